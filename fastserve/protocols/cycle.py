"""One app call, written once for every protocol: admission, the app's Task, and its epilogue.

``AppCycle`` is the base of HTTP/1.1's ``RequestCycle``, the HTTP/2
``Stream`` and the ``WebSocketProtocol`` session: each is this base plus its
framing. What it owns:

- **admission** (``start_app``): ``--limit-concurrency`` (refused: the caller
  answers 503 in its own framing), the in-flight count, ``--limit-max-requests``;
- **the Task**: in a fresh copy of the server's context (the lifespan's, or an
  empty one with ``--reset-contextvars``), named, and started eagerly where the
  loop allows it (CPython 3.12+, the default task factory): an app that does not
  wait has answered when the Task returns;
- **the epilogue** (``run``): an app that raised, or returned without
  completing its response, is told to the log once (``asgi.log_app_failure``)
  and answered with 500 or a cut connection (``abort``); the admission is
  released.

The framings fill in ``receive``/``send``, ``client_gone`` and ``abort``
(the WebSocket session overrides the epilogue: its phases are not a response).

Compiled by Cython in pure-Python mode into ``fastserve._speedups.cycle``
(``fastserve/_speedups/cycle.pxd``); the compiled protocols cimport it, so
these are C calls on the hot path. The shared constants of the ASGI cycle live
here too.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from asyncio import Task
from typing import Any

from fastserve.asgi import asgi_version, log_app_failure

error_logger = logging.getLogger("fastserve.error")

TASK_NAME = "fastserve.request"
# Tasks that take their first step at once (CPython 3.12+; see start_app).
EAGER_TASKS = sys.version_info >= (3, 12)
ASGI_VERSION = asgi_version()  # copied into every scope
# Responses that never carry a body.
NO_BODY_STATUSES = frozenset({204, 304})
# The ASGI response extensions every HTTP request is offered (HTTP/1.0 has no early hints: see http1).
RESPONSE_EXTENSIONS = {
    "http.response.trailers": {},
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}


class AppCycle:
    """One call of the app: admitted, run in its Task, ended once. Subclassed by each framing."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.scope: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        # The app has been called (its Task took its first step).
        self.running = False
        # The response: started by the app, and complete (or abandoned).
        self.started = False
        self.complete = False
        self.started_at = 0.0

    def start_app(self, eager: bool, plain_tasks: bool, name: str = TASK_NAME) -> bool:
        """Admit the call and run the app in its Task; False when ``--limit-concurrency`` refuses it.

        ``eager``: the app's first step runs now, where the loop allows it
        (``plain_tasks``: the loop has no task factory of its own). A Task that
        ends in that first step is never kept.
        """
        state = self.state
        if state.limit_concurrency and state.in_flight >= state.limit_concurrency:
            return False
        state.in_flight += 1
        state.requests_started += 1
        if state.requests_started == state.max_requests:
            state.on_max_requests()
        # Each call runs in a fresh copy of the server's context, never in a copy
        # of the call before it (a pipelined request starts from there).
        coro = self.run(state.app)
        context = state.context.copy()
        loop = state.loop
        if not plain_tasks:
            task = loop.create_task(coro, context=context, name=name)
        elif eager and EAGER_TASKS:
            # (Named here: a Task without a name formats "Task-<n>" for every request.)
            task = Task(coro, loop=loop, context=context, name=name, eager_start=True)
            if task.done():
                return True
        else:
            task = Task(coro, loop=loop, context=context, name=name)
        self.task = task
        # The cycle takes its task out of state.tasks when the app returns:
        # cheaper than a done callback, which costs a loop iteration.
        state.tasks.add(task)
        return True

    async def run(self, app: Any) -> None:
        self.running = True
        try:
            await app(self.scope, self.receive, self.send)  # type: ignore[attr-defined]
        except (Exception, asyncio.CancelledError) as exc:
            self.app_raised(exc)
        else:
            self.app_returned()
        finally:
            self.app_done()

    def app_raised(self, exc: BaseException) -> None:
        """The app raised (or was cancelled at shutdown): told once, then 500 or a cut connection."""
        log_app_failure(exc, self.client_gone(), self.scope["path"])
        self.abort(500)

    def app_returned(self) -> None:
        """The app returned: an unfinished response is an app bug, unless the client had gone."""
        if self.complete:
            return
        if not self.client_gone():
            what = "completing" if self.started else "starting"
            error_logger.error("ASGI callable returned without %s the response", what)
        self.abort(500)

    def app_done(self) -> None:
        """The call is over: its admission released."""
        state = self.state
        state.in_flight -= 1
        state.tasks.discard(self.task)
        self.task = None

    def client_gone(self) -> bool:
        """Whether nobody waits for the answer any more (the framing knows)."""
        raise NotImplementedError

    def abort(self, status: int) -> None:
        """End a call that went wrong: an error answer with ``status`` if nothing was sent, else a cut."""
        raise NotImplementedError

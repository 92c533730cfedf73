"""One server process: sockets, lifespan, signals, the once-a-second sweep, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import random
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastserve.config import Config, StartupError
from fastserve.lifespan import Lifespan
from fastserve.protocols import HTTP1Protocol, ServerState, parser_factory
from fastserve.protocols.proxy_protocol import ProxyProtocolGate
from fastserve.sockets import BindError, log_listening, open_sockets
from fastserve.tls import TLSInfo

logger = logging.getLogger("fastserve.error")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SWEEP_INTERVAL = 1.0
# The exit code of a process whose application failed to start (gunicorn's too).
STARTUP_FAILURE = 3


class Server:
    """Serves one Config in the current process: ``await Server(config).serve()``."""

    def __init__(self, config: Config, notify: Callable[[str], None] | None = None) -> None:
        """``notify`` hears "ready" (listening, lifespan started) and "retiring" (max requests reached)."""
        self.config = config
        self.notify = notify
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.servers: list[asyncio.AbstractServer] = []
        self.state: ServerState | None = None
        self.lifespan: Lifespan | None = None
        self.ssl_context: ssl.SSLContext | None = None
        self._exit_event: asyncio.Event | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._notified_at = 0.0
        # Awaitables the heartbeat callback returned, kept until they finish.
        self._heartbeats: set[asyncio.Task[Any]] = set()

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        with asyncio.Runner(loop_factory=self.config.loop_factory()) as runner:
            runner.run(self.serve(sockets))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until told to exit. ``sockets``: listeners a supervisor (or gunicorn) bound and announced."""
        process_id = os.getpid()
        logger.info("Started server process [%d]", process_id)
        await self._serve(sockets)
        if self.started:
            logger.info("Finished server process [%d]", process_id)

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        config = self.config
        app = config.load()
        self.ssl_context = config.ssl_context()
        http2 = config.http2_settings()
        if self.ssl_context is not None:
            # ALPN: "h2" first when HTTP/2 is served (the client picks from what both offer).
            self.ssl_context.set_alpn_protocols(["h2", "http/1.1"] if http2 is not None else ["http/1.1"])
        self.state = ServerState(
            app=app,
            loop=loop,
            scheme="https" if self.ssl_context is not None else "http",
            proxy=config.proxy_trust,
            websocket=config.websocket_settings(),
            http2=http2,
            tls=TLSInfo(self.ssl_context, os.fspath(config.ssl_certfile)) if self.ssl_context is not None else None,
            parser_factory=parser_factory(config.http),
            root_path=config.root_path,
            server_header=config.server_header,
            date_header=config.date_header,
            extra_headers=config.headers,
            access_format=config.access_format,
            access_log=config.access_log and logging.getLogger("fastserve.access").isEnabledFor(logging.INFO),
            timeout_keep_alive=config.timeout_keep_alive,
            timeout_request_header=config.timeout_request_header,
            timeout_request_body=config.timeout_request_body,
            limit_request_line=config.limit_request_line,
            limit_request_fields=config.limit_request_fields,
            limit_request_field_size=config.limit_request_field_size,
            limit_concurrency=config.limit_concurrency,
            max_head_size=config.h11_max_incomplete_event_size,
        )
        self.lifespan = Lifespan(app, config.lifespan, self.state.lifespan_state, config.timeout_lifespan_shutdown)
        if config.limit_max_requests:
            # Jitter keeps the workers of one supervisor from all recycling at once.
            self.state.max_requests = config.limit_max_requests + random.randint(0, config.limit_max_requests_jitter)
            self.state.on_max_requests = self._retire
        with self._handle_signals(loop):
            await self._bind(sockets)
            try:
                if not await self.lifespan.startup():
                    logger.error("Application startup failed. Exiting.")
                    return
                # Each request runs in a copy of this context: by default the
                # lifespan's, so what startup set (a context variable) is seen.
                self.state.context = contextvars.Context() if config.reset_contextvars else self.lifespan.context
                for server in self.servers:
                    await server.start_serving()
                self.started = True
                if not sockets:
                    log_listening([sock for server in self.servers for sock in server.sockets], self.state.scheme)
                if self.notify is not None:
                    self.notify("ready")
                self._schedule_sweep()
                if not self.should_exit:
                    await self._exit_event.wait()
                await self.shutdown()
            finally:
                for server in self.servers:
                    server.close()
                if self._sweep is not None:
                    self._sweep.cancel()

    async def _bind(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        state = self.state

        def http_protocol() -> HTTP1Protocol:
            return HTTP1Protocol(state)

        def proxy_protocol_gate() -> ProxyProtocolGate:
            # TLS, if any, starts after the PROXY header: the gate starts it.
            return ProxyProtocolGate(
                state, http_protocol, config.proxy_protocol_trust, self.ssl_context, config.timeout_ssl_handshake
            )

        factory: Callable[[], asyncio.BaseProtocol] = (
            proxy_protocol_gate if config.proxy_protocol_trust is not None else http_protocol
        )

        if not sockets:
            try:
                sockets = open_sockets(config.addresses, config.backlog, config.uds_permissions, config.reuse_port)
            except BindError as exc:
                raise StartupError(str(exc)) from None  # exit 3, as uvicorn's for an address in use
        options: dict[str, Any] = {"backlog": config.backlog, "start_serving": False}
        if self.ssl_context is not None and factory is http_protocol:
            options.update(ssl=self.ssl_context, ssl_handshake_timeout=config.timeout_ssl_handshake)
        for sock in sockets:
            if sock.family == socket.AF_UNIX:
                server = await loop.create_unix_server(factory, sock=sock, **options)
            else:
                server = await loop.create_server(factory, sock=sock, **options)
            self.servers.append(server)

    def _schedule_sweep(self) -> None:
        self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._on_sweep)

    def _on_sweep(self) -> None:
        """The one periodic timer: clock, Date header, deadlines, exit requests.

        It is scheduled again first, and whatever fails in it is logged with its
        traceback and skipped: one connection's fault must not stop every
        timeout of the process.
        """
        state = self.state
        assert state is not None and self._exit_event is not None
        self._schedule_sweep()
        now = state.loop.time()
        try:
            state.tick(now)
        except Exception:
            logger.exception("The once-a-second clock tick failed")
        for connection in list(state.connections):
            try:
                connection.check_deadline(now)
            except Exception:
                logger.exception("Checking the deadline of a connection failed; closing it")
                with contextlib.suppress(Exception):
                    connection.close()
        callback = self.config.callback_notify
        if callback is not None and now - self._notified_at >= self.config.timeout_notify:
            # uvicorn's heartbeat (a gunicorn worker tells its arbiter it is alive).
            self._notified_at = now
            try:
                result = callback()
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._heartbeats.add(task)
                    task.add_done_callback(self._heartbeat_done)
            except Exception:
                logger.exception("The heartbeat callback failed")
        if self.should_exit:
            self._exit_event.set()

    def _heartbeat_done(self, task: asyncio.Task[Any]) -> None:
        self._heartbeats.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("The heartbeat callback failed", exc_info=task.exception())

    def _retire(self) -> None:
        """The protocol started request number --limit-max-requests: leave, to be replaced."""
        assert self.state is not None
        logger.info("Maximum request limit of %d reached; shutting down to be replaced", self.state.max_requests)
        if self.notify is not None:
            self.notify("retiring")
        self.should_exit = True
        if self._exit_event is not None:
            self._exit_event.set()

    def handle_exit(self, sig: int, frame: object = None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        if self._exit_event is not None:
            self._exit_event.set()

    @contextlib.contextmanager
    def _handle_signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, self.handle_exit, sig)
        try:
            yield
        finally:
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), then lifespan shutdown."""
        state = self.state
        assert state is not None and self.lifespan is not None
        logger.info("Shutting down")
        for server in self.servers:
            server.close()
        state.shutting_down = True
        # Connections the loop accepted before the listeners closed are made now.
        await asyncio.sleep(0)
        for connection in list(state.connections):
            try:
                connection.shutdown()
            except Exception:  # (one connection's fault must not stop the shutdown of the others)
                logger.exception("Shutting down a connection failed; closing it")
                with contextlib.suppress(Exception):
                    connection.close()

        loop = asyncio.get_running_loop()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        # Wait for the requests in flight, and for new connections' first requests.
        while (state.tasks or state.connections) and not self.force_exit:
            remaining = 0.1 if deadline is None else min(0.1, deadline - loop.time())
            if remaining <= 0:
                break
            if state.tasks:
                await asyncio.wait(list(state.tasks), timeout=remaining)
            else:
                await asyncio.sleep(remaining)
        if state.tasks:
            logger.warning("Cancelling %d request(s) still running at the end of graceful shutdown", len(state.tasks))
            for task in list(state.tasks):
                task.cancel()
            await asyncio.wait(list(state.tasks), timeout=1.0)
        for connection in list(state.connections):
            connection.close()
        if not self.force_exit:
            await self.lifespan.shutdown()

"""The ASGI lifespan protocol: startup before serving, shutdown after."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from fastserve.asgi import ASGIApp, Message, asgi_version

logger = logging.getLogger("fastserve.error")


class Lifespan:
    """Runs the application's lifespan coroutine beside the server.

    ``mode`` is 'on' (the app must support lifespan), 'auto' (an app that raises
    before answering startup is taken not to support it) or 'off'.
    """

    def __init__(self, app: ASGIApp, mode: str, state: dict[str, Any], shutdown_timeout: float = 30) -> None:
        """``shutdown_timeout``: seconds the app gets to finish its shutdown (0: no limit)."""
        self.app = app
        self.mode = mode
        self.state = state
        self.shutdown_timeout = shutdown_timeout
        self.failed = False
        self.unsupported = mode == "off"
        self._received = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The lifespan runs in this context: what startup sets in it, requests see.
        self.context = contextvars.copy_context()

    async def startup(self) -> bool:
        """True when the server may start serving."""
        if self.unsupported:
            return True
        logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._main(), context=self.context)
        await self._inbox.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self.failed:
            await self._stop()  # (an app that reported failure may still be waiting in receive())
            return False
        if not self.unsupported:
            logger.info("Application startup complete.")
        return True

    async def shutdown(self) -> None:
        if self.unsupported or self._task is None or self._task.done():
            return
        logger.info("Waiting for application shutdown.")
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._shutdown_done.wait(), self.shutdown_timeout or None)
        except TimeoutError:
            logger.error("Application shutdown did not complete within %g s; cancelling it", self.shutdown_timeout)
            self.failed = True
        await self._stop()
        if not self.failed:
            logger.info("Application shutdown complete.")

    async def _stop(self) -> None:
        """Cancel the lifespan task if it is still running, and wait for it to end."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": asgi_version(), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            # An app without lifespan support raises before it ever receives;
            # one that took the startup message and then raised has failed.
            if isinstance(exc, asyncio.CancelledError):
                pass  # cancelled by _stop, or by the loop's end after a forced exit: no failure of the app
            elif self.failed:
                pass  # the app reported its failure (Starlette's message is the traceback); said once
            elif self.mode == "auto" and not self._received:
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
                self.unsupported = True
            else:
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
                self.failed = True
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> Message:
        self._received = True
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        message_type = message.get("type")
        if message_type == "lifespan.startup.complete":
            self._startup_done.set()
        elif message_type in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self.failed = True
            if message.get("message"):
                logger.error("%s", message["message"])
            done = self._startup_done if message_type == "lifespan.startup.failed" else self._shutdown_done
            done.set()
        elif message_type == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"Unexpected lifespan message {message_type!r}")

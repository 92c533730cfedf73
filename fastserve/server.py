"""One server process: sockets, lifespan, signals, the once-a-second sweep, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Iterator

from fastserve.config import Config, ConfigError
from fastserve.lifespan import Lifespan
from fastserve.protocols import HTTP1Protocol, ServerState, parser_factory

logger = logging.getLogger("fastserve.error")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SWEEP_INTERVAL = 1.0


class Server:
    """Serves one Config in the current process: ``await Server(config).serve()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.servers: list[asyncio.AbstractServer] = []
        self.state: ServerState | None = None
        self.lifespan: Lifespan | None = None
        self._exit_event: asyncio.Event | None = None
        self._sweep: asyncio.TimerHandle | None = None

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        with asyncio.Runner(loop_factory=self.config.loop_factory()) as runner:
            runner.run(self.serve(sockets))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        config = self.config
        app = config.load()
        self.state = ServerState(
            app=app,
            loop=loop,
            parser_factory=parser_factory(config.http),
            root_path=config.root_path,
            server_header=config.server_header,
            date_header=config.date_header,
            extra_headers=config.headers,
            access_log=config.access_log and logging.getLogger("fastserve.access").isEnabledFor(logging.INFO),
            timeout_keep_alive=config.timeout_keep_alive,
            timeout_request_header=config.timeout_request_header,
            limit_request_line=config.limit_request_line,
            limit_request_fields=config.limit_request_fields,
            limit_request_field_size=config.limit_request_field_size,
            limit_concurrency=config.limit_concurrency,
            max_head_size=config.h11_max_incomplete_event_size,
        )
        self.lifespan = Lifespan(app, config.lifespan, self.state.lifespan_state)
        with self._handle_signals(loop):
            await self._bind(sockets)
            try:
                if not await self.lifespan.startup():
                    logger.error("Application startup failed. Exiting.")
                    return
                for server in self.servers:
                    await server.start_serving()
                self.started = True
                self._log_started()
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

        def factory() -> HTTP1Protocol:
            return HTTP1Protocol(state)

        options = {"backlog": config.backlog, "start_serving": False}
        try:
            if sockets:
                for sock in sockets:
                    self.servers.append(await loop.create_server(factory, sock=sock, **options))
            elif config.fd is not None:
                sock = socket.socket(fileno=config.fd)
                if sock.family == socket.AF_UNIX:
                    self.servers.append(await loop.create_unix_server(factory, sock=sock, **options))
                else:
                    self.servers.append(await loop.create_server(factory, sock=sock, **options))
            elif config.uds is not None:
                _remove_stale_socket(config.uds)
                self.servers.append(await loop.create_unix_server(factory, path=config.uds, **options))
                os.chmod(config.uds, 0o666)
            else:
                self.servers.append(
                    await loop.create_server(factory, host=config.host, port=config.port, reuse_address=True, **options)
                )
        except OSError as exc:
            if config.uds is not None:
                where = config.uds
            elif config.fd is not None:
                where = f"fd {config.fd}"
            else:
                where = f"{config.host}:{config.port}"
            raise ConfigError(f"could not listen on {where}: {exc.strerror or exc}") from None

    def _log_started(self) -> None:
        for server in self.servers:
            for sock in server.sockets:
                address = sock.getsockname()
                if sock.family == socket.AF_INET6:
                    url = f"http://[{address[0]}]:{address[1]}"
                elif sock.family == socket.AF_INET:
                    url = f"http://{address[0]}:{address[1]}"
                else:
                    url = f"unix socket {address or self.config.uds}"
                logger.info("Fastserve running on %s (Press CTRL+C to quit)", url)

    def _schedule_sweep(self) -> None:
        self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._on_sweep)

    def _on_sweep(self) -> None:
        """The one periodic timer: clock, Date header, deadlines, exit requests."""
        state = self.state
        assert state is not None and self._exit_event is not None
        now = state.loop.time()
        state.tick(now)
        for connection in list(state.connections):
            connection.check_deadline(now)
        if self.should_exit:
            self._exit_event.set()
        self._schedule_sweep()

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
        for connection in list(state.connections):
            connection.shutdown()

        loop = asyncio.get_running_loop()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        while state.tasks and not self.force_exit:
            remaining = 0.1 if deadline is None else min(0.1, deadline - loop.time())
            if remaining <= 0:
                break
            await asyncio.wait(list(state.tasks), timeout=remaining)
        if state.tasks:
            logger.warning("Cancelling %d request(s) still running at the end of graceful shutdown", len(state.tasks))
            for task in list(state.tasks):
                task.cancel()
            await asyncio.wait(list(state.tasks), timeout=1.0)
        for connection in list(state.connections):
            connection.close()
        if not self.force_exit:
            await self.lifespan.shutdown()


def _remove_stale_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)

"""The worker side of the supervisor: serve, say when ready, answer pings.

A worker process is started by ``fastserve.supervisor`` with the listening
sockets and one end of a pipe. Over the pipe it reports "ready" (listening and
lifespan startup done) and "retiring" (leaving after --limit-max-requests), and
it answers the supervisor's pings from its event loop, so a worker whose loop is
stuck stops answering and is replaced. When the pipe closes (the supervisor is
gone) the worker shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from multiprocessing.connection import Connection

from fastserve.config import Config, ConfigError, StartupError
from fastserve.main import report_startup_error
from fastserve.server import STARTUP_FAILURE, Server
from fastserve.sockets import reuse_port_twin

logger = logging.getLogger("fastserve.error")


def resident_memory() -> int:
    """This process's resident set size in bytes; where /proc is missing (macOS), its peak."""
    try:
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # ru_maxrss is in bytes on macOS (kilobytes on Linux, which has /proc).
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class SupervisorLink:
    """The worker's end of its pipe to the supervisor."""

    def __init__(self, connection: Connection, server: Server) -> None:
        self.connection = connection
        self.server = server

    def notify(self, event: str) -> None:
        try:
            self.connection.send((event, resident_memory()))
        except OSError:
            pass

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.connection.fileno(), self._on_message, loop)

    def _on_message(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            message = self.connection.recv()
        except (EOFError, OSError):
            # The supervisor is gone: do not outlive it.
            loop.remove_reader(self.connection.fileno())
            self.server.handle_exit(signal.SIGTERM)
            return
        if message == "ping":
            self.notify("pong")


def _own_listener(sock: socket.socket, backlog: int) -> socket.socket:
    """With --reuse-port, this worker's listener on the supervisor's TCP address."""
    if sock.family == socket.AF_UNIX or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return sock  # a Unix or inherited socket is shared
    twin = reuse_port_twin(sock, backlog)
    sock.close()
    return twin


def serve_worker(config: Config, sockets: list[socket.socket], connection: Connection) -> None:
    """The entry point of a worker process (run by multiprocessing's spawn start method)."""
    # A terminal's hangup goes to the supervisor, which restarts the workers.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config.configure_logging()
        if config.reuse_port:
            sockets = [_own_listener(sock, config.backlog) for sock in sockets]
        server = Server(config)
        link = SupervisorLink(connection, server)
        server.notify = link.notify

        async def main() -> None:
            link.watch(asyncio.get_running_loop())
            await server.serve(sockets)

        with asyncio.Runner(loop_factory=config.loop_factory()) as runner:
            runner.run(main())
    except StartupError as exc:
        sys.exit(report_startup_error(exc))
    except ConfigError as exc:  # (the supervisor checked the options: a setting only a worker sees)
        logger.error("%s", exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(0)
    sys.exit(0 if server.started else STARTUP_FAILURE)

"""Listening sockets from a Config: TCP, Unix, an inherited descriptor, systemd's, several ``--bind``.

The sockets are bound and listening before any application code runs, so the
supervisor can hold them for its workers (connections wait in the backlog while
a worker restarts) and a single server process uses the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass

logger = logging.getLogger("fastserve.error")

SYSTEMD_FIRST_FD = 3
TCP_MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"


class BindError(ValueError):
    """An address that cannot be listened on; the message names it and says why."""


@dataclass(frozen=True)
class Address:
    """One place to listen: a TCP host and port, a Unix socket path, or a descriptor."""

    host: str = ""
    port: int = 0
    path: str | None = None
    fd: int | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        if self.fd is not None:
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str) -> Address:
    """A ``--bind`` value: ``HOST:PORT``, ``[V6]:PORT``, ``unix:PATH`` or ``fd://N`` (gunicorn's spelling)."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise BindError(f"--bind {text!r}: the Unix socket path is empty")
        return Address(path=path)
    if text.startswith("fd://"):
        number = text[len("fd://") :]
        if not number.isdigit():
            raise BindError(f"--bind {text!r}: expected fd://<number>")
        return Address(fd=int(number))
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or not port_text:
            raise BindError(f"--bind {text!r}: expected [ADDRESS]:PORT")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, "8000"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise BindError(f"--bind {text!r}: the port must be a number between 0 and 65535")
    return Address(host=host or "0.0.0.0", port=int(port_text))


def systemd_sockets() -> list[socket.socket]:
    """Sockets handed over by systemd socket activation (``LISTEN_FDS`` for this process), else []."""
    count = os.environ.get("LISTEN_FDS")
    if not count or os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    # Not for our children: they get their sockets from us.
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count.isdigit():
        raise BindError(f"LISTEN_FDS={count!r} is not a number")
    return [adopt_fd(fd) for fd in range(SYSTEMD_FIRST_FD, SYSTEMD_FIRST_FD + int(count))]


def adopt_fd(fd: int) -> socket.socket:
    """A listening socket from an inherited descriptor; its family is read from the socket itself."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"fd {fd} is not a usable socket: {exc.strerror or exc}") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"fd {fd} is not a stream socket")
    sock.setblocking(False)
    return sock


def bind_tcp(host: str, port: int, backlog: int, reuse_port: bool = False, listening: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port``; ``listening=False`` only holds the address (see reuse_port_twin)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"could not listen on {Address(host, port)}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    with _setting_up(sock, Address(host, port)):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        if listening:
            sock.listen(backlog)
    return sock


def bind_unix(path: str, backlog: int, permissions: int) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket left by an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _setting_up(sock, Address(path=path)):
        sock.bind(path)
        os.chmod(path, permissions)
        sock.listen(backlog)
    return sock


@contextlib.contextmanager
def _setting_up(sock: socket.socket, address: Address) -> Iterator[None]:
    """Binding ``sock``: on failure it is closed and the error names the address; then it is made non-blocking."""
    try:
        yield
    except OSError as exc:
        sock.close()
        raise BindError(f"could not listen on {address}: {exc.strerror or exc}") from None
    sock.setblocking(False)


def open_sockets(
    addresses: list[Address], backlog: int, uds_permissions: int, reuse_port: bool = False, listening: bool = True
) -> list[socket.socket]:
    """systemd's sockets when it passed this process some, else one socket per address.

    ``listening=False`` only holds the TCP addresses (see reuse_port_twin).
    """
    inherited = systemd_sockets()
    if inherited:
        return inherited
    sockets = []
    for address in addresses:
        if address.path is not None:
            sockets.append(bind_unix(address.path, backlog, uds_permissions))
        elif address.fd is not None:
            sockets.append(adopt_fd(address.fd))
        else:
            sockets.append(bind_tcp(address.host, address.port, backlog, reuse_port, listening))
    return sockets


def reuse_port_twin(sock: socket.socket, backlog: int) -> socket.socket:
    """A new listener on the address of ``sock``, one per worker.

    ``sock`` is bound with SO_REUSEPORT but not listening: it holds the port
    (and says which, for port 0) without joining the group that the kernel
    spreads connections over.
    """
    twin = socket.socket(sock.family, socket.SOCK_STREAM)
    twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    twin.bind(sock.getsockname())
    twin.listen(backlog)
    twin.setblocking(False)
    return twin


def warn_if_requests_are_lost_with_reuse_port() -> None:
    """With SO_REUSEPORT each worker has its own queue, lost when it closes unless the kernel migrates it."""
    try:
        with open(TCP_MIGRATE_REQ) as file:
            enabled = file.read().strip() != "0"
    except OSError:
        return
    if not enabled:
        logger.warning(
            "--reuse-port: net.ipv4.tcp_migrate_req is 0, so connections queued on a worker that stops "
            "are reset; set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1) for restarts without losses"
        )


def describe(sock: socket.socket) -> str:
    """The URL or path a listening socket serves, for the start-up log line."""
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    if sock.family == socket.AF_INET:
        return f"{address[0]}:{address[1]}"
    return f"unix socket {address}"


def log_listening(sockets: list[socket.socket], scheme: str) -> None:
    """The start-up line of each listener, said once per server (by the supervisor under --workers)."""
    for sock in sockets:
        where = describe(sock)
        url = where if sock.family == socket.AF_UNIX else f"{scheme}://{where}"
        logger.info("Fastserve running on %s (Press CTRL+C to quit)", url)


def socket_address(info: object) -> tuple[str, int] | None:
    """(host, port) from a transport's peername or sockname; None for Unix sockets."""
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None

"""Real servers on 127.0.0.1 with ephemeral ports, and raw-socket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import signal
import socket
import ssl
import struct
import termios
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from fastserve import Config, Server
from fastserve.config import resolve_loop
from tests import log_check, processes

HTTP_IMPLEMENTATIONS = ("httptools", "h11")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tracebacks(*patterns): the tracebacks this test makes on purpose (see tests/log_check.py)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Every test fails on a logging error or an unexpected traceback from the servers it ran."""
    marker = item.get_closest_marker("tracebacks")
    monkeypatch = pytest.MonkeyPatch()
    check = log_check.start(marker.args if marker else (), monkeypatch)
    try:
        result = yield
        for process in processes.started:
            process.check_output(check)
        report = check.report()
        if report is not None:
            pytest.fail(report, pytrace=False)
        return result
    finally:
        monkeypatch.undo()
        log_check.stop()
        processes.started.clear()


class RunningServer:
    def __init__(self, server: Server, thread: threading.Thread, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.thread = thread
        self.loop = loop
        sockname = server.servers[0].sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    @property
    def state(self) -> Any:
        return self.server.state

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def call(self, function: Any, *args: Any) -> None:
        """Run ``function`` on the server's loop (thread-safe)."""
        self.loop.call_soon_threadsafe(function, *args)

    def sync(self, iterations: int = 1, timeout: float = 5.0) -> None:
        """Wait until the server's loop has run ``iterations`` more iterations (what was ready has been handled)."""
        for _ in range(iterations):
            done = threading.Event()
            self.call(done.set)
            assert done.wait(timeout), "the server's loop is stuck"

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self.call(self.server.handle_exit, signal.SIGTERM)
        except RuntimeError:  # the loop closed meanwhile: a shutdown the test began has finished
            if self.thread.is_alive() and not self.loop.is_closed():
                raise
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "server did not stop"


@contextlib.contextmanager
def run_server(app: Any, **options: Any) -> Iterator[RunningServer]:
    """Start a fastserve Server in a thread; yield once it accepts connections."""
    options.setdefault("port", 0)
    options.setdefault("log_config", None)
    options.setdefault("lifespan", "off")
    config = Config(app, host=options.pop("host", "127.0.0.1"), **options)
    server = Server(config)
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        task = asyncio.ensure_future(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.002)
        ready.set()
        await task

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=config.loop_factory()) as runner:
                runner.run(main())
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    if failure:
        raise failure[0]
    assert server.started, "server did not start"
    running = RunningServer(server, thread, holder["loop"])
    # The event loop the options name is the one serving (a test parametrized on it must not pass on the other).
    loop_module = type(running.loop).__module__
    assert loop_module.startswith("uvloop" if resolve_loop(config.loop) == "uvloop" else "asyncio"), loop_module
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()
    if failure:  # the server thread died after it started: that is the test's failure too
        raise AssertionError(f"the server failed while the test ran: {failure[0]!r}") from failure[0]


@pytest.fixture(params=HTTP_IMPLEMENTATIONS)
def http(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def serve(http: str) -> Any:
    """``with serve(app, **options) as server:`` on the parametrized HTTP implementation."""

    def start(app: Any, **options: Any) -> contextlib.AbstractContextManager[RunningServer]:
        options.setdefault("http", http)
        return run_server(app, **options)

    return start


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_files(ca, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = folder / "server.pem", folder / "server.key", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    keyfile.write_bytes(cert.private_key_pem.bytes())
    ca.cert_pem.write_to_path(cafile)
    return {"certfile": str(certfile), "keyfile": str(keyfile), "cafile": str(cafile), "cert": cert}


def client_context(ca: trustme.CA, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client_cert is not None:
        client_cert.configure_cert(context)
    return context


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server closes the connection (cleanly: a reset raises ConnectionResetError)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def closed_after(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, float]:
    """Everything until the server closes, and how long that took (for checks of both bounds)."""
    started = time.monotonic()
    data = recv_all(sock, timeout)
    return data, time.monotonic() - started


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


_unread: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read exactly one response; bytes past it are kept for the next call on ``sock``."""
    sock.settimeout(timeout)
    buffer = _unread.pop(sock, b"")

    def fill() -> None:
        nonlocal buffer
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-response"
        buffer += chunk

    while b"\r\n\r\n" not in buffer:
        fill()
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(buffer) < length:
            fill()
        body, buffer = buffer[:length], buffer[length:]
    elif headers.get(b"transfer-encoding") == b"chunked":
        while b"0\r\n\r\n" not in buffer:
            fill()
        end = buffer.index(b"0\r\n\r\n") + 5
        body, buffer = decode_chunked(buffer[:end]), buffer[end:]
    else:
        body = buffer + recv_all(sock, timeout)
        buffer = b""
    _unread[sock] = buffer
    return status, headers, body


def decode_chunked(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]


def all_read(server: RunningServer) -> bool:
    """Whether the server has read everything its connections' clients sent (their kernel queues are empty)."""
    for connection in list(server.state.connections):
        sock = connection.transport.get_extra_info("socket")
        unread = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        if struct.unpack("i", unread)[0]:
            return False
    return True


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Wait for a condition that another thread makes true (server-side state)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)

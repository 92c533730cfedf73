"""Flow control, timeouts and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from fastserve.asgi import ClientDisconnected
from fastserve.protocols import HTTP1Protocol, ServerState, parser_factory
from fastserve.protocols.http1 import MAX_PIPELINED, READ_HIGH_WATER
from tests.apps import hello, read_body
from tests.conftest import closed_after, read_response, recv_all, wait_for


class FakeTransport:
    """Just enough of an asyncio transport to drive the protocol state machine."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.writes = 0
        self.reading = True
        self.closed = False
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.written += data
        self.writes += 1

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def can_write_eof(self) -> bool:
        return False  # (as under TLS: an error answer closes at once, no lingering)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 80)}.get(name)


def connect(app: Any, http: str, **state_options: Any) -> tuple[Any, FakeTransport, ServerState]:
    state = ServerState(app=app, loop=asyncio.get_running_loop(), parser_factory=parser_factory(http), **state_options)
    protocol = HTTP1Protocol(state)
    transport = FakeTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol, transport, state


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_unread_body_pauses_reading_until_the_app_drains_it(http):
    release = asyncio.Event()
    received = []

    async def app(scope, receive, send):
        await release.wait()
        body, _ = await read_body(receive)
        received.append(body)
        await hello(scope, receive, send)

    async def main():
        protocol, transport, _ = connect(app, http)
        body = b"x" * (4 * READ_HIGH_WATER)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        offset = 0
        while transport.reading and offset < len(body):
            protocol.data_received(body[offset : offset + 16384])
            offset += 16384
        assert not transport.reading, "reading did not pause"
        assert offset <= READ_HIGH_WATER + 16384
        release.set()
        while offset < len(body):
            await until(lambda: transport.reading)
            protocol.data_received(body[offset : offset + 16384])
            offset += 16384
        await until(lambda: received)
        assert received == [body]
        assert transport.written.startswith(b"HTTP/1.1 200 OK")

    run(main())


def test_pipelined_requests_are_bounded(http):
    release = asyncio.Event()

    async def app(scope, receive, send):
        await release.wait()
        await hello(scope, receive, send)

    async def main():
        protocol, transport, _ = connect(app, http)
        sent = 0
        while transport.reading and sent < 10 * MAX_PIPELINED:
            protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sent += 1
        assert not transport.reading and sent <= MAX_PIPELINED + 1
        release.set()
        await until(lambda: transport.written.count(b"HTTP/1.1 200") == sent)
        assert transport.reading

    run(main())


def test_send_waits_while_the_transport_is_paused(http):
    progress = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(5):
            await send({"type": "http.response.body", "body": b"%d" % index, "more_body": True})
            progress.append(index)
        await send({"type": "http.response.body", "body": b""})

    async def main():
        protocol, transport, _ = connect(app, http)
        protocol.pause_writing()
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(20):
            await asyncio.sleep(0)
        assert progress == [] and transport.written == b""
        protocol.resume_writing()
        await until(lambda: transport.written.endswith(b"0\r\n\r\n"))
        assert progress == [0, 1, 2, 3, 4]

    run(main())


def test_send_raises_when_the_client_leaves_while_paused(http):
    outcome = []

    async def app(scope, receive, send):
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        except ClientDisconnected as exc:
            outcome.append(exc)

    async def main():
        protocol, transport, state = connect(app, http)
        protocol.pause_writing()
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0)
        protocol.connection_lost(ConnectionResetError())
        await until(lambda: outcome)
        await until(lambda: not state.tasks)
        assert isinstance(outcome[0], OSError)

    run(main())


def test_many_small_packets_make_one_body(http):
    body = bytes(range(256)) * 4096
    received = []

    async def app(scope, receive, send):
        received.append((await read_body(receive))[0])
        await hello(scope, receive, send)

    async def main():
        protocol, transport, _ = connect(app, http)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for offset in range(0, len(body), 512):
            await until(lambda: transport.reading)
            protocol.data_received(body[offset : offset + 512])
        await until(lambda: received)
        assert received == [body]

    run(main())


# Deadlines are checked by a once-a-second sweep against a clock it ticks:
# a timeout of 2 s closes after 1 to 3 s.


def test_idle_keep_alive_connection_is_closed(serve):
    with serve(hello, timeout_keep_alive=2) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # still open right after a response
        assert read_response(sock)[0] == 200
        data, waited = closed_after(sock)
    assert data == b"" and 0.9 <= waited <= 4.0


def test_silent_connection_is_closed(serve):
    with serve(hello, timeout_keep_alive=2) as server, server.connect() as sock:
        data, waited = closed_after(sock)
    assert data == b"" and 0.9 <= waited <= 4.0


def test_slowloris_head_is_cut_off(serve):
    with serve(hello, timeout_request_header=2) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        response = b""
        sock.settimeout(0.2)
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X")  # one byte at a time never completes the head
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            response += chunk
        waited = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert 0.9 <= waited <= 4.0


def test_graceful_shutdown_lets_requests_finish(serve):
    release = threading.Event()
    started = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            started.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        await hello(scope, receive, send)

    with serve(app) as server:
        idle = server.connect()
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[0] == 200
        busy = server.connect()
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        server.call(server.server.handle_exit, 15)
        assert recv_all(idle) == b""  # idle keep-alive connection closed at once
        wait_for(lambda: not server.server.servers[0].is_serving())
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url("/"))
        release.set()
        response = recv_all(busy)
        assert response.startswith(b"HTTP/1.1 200 OK") and b"connection: close\r\n" in response
        server.thread.join(5)
        assert not server.thread.is_alive()


def test_graceful_shutdown_is_bounded(serve):
    started = threading.Event()

    async def app(scope, receive, send):
        started.set()
        await asyncio.Event().wait()  # never finishes

    with serve(app, timeout_graceful_shutdown=0.5) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        server.call(server.server.handle_exit, 15)
        response, waited = closed_after(sock)
        server.thread.join(5)
        assert not server.thread.is_alive()
    # The app is cancelled after the grace; nothing was sent, so the client gets a 500.
    assert response.startswith(b"HTTP/1.1 500 ")
    assert 0.4 <= waited <= 3.0


def test_a_pipelined_batch_leaves_in_one_write(http):
    async def main():
        protocol, transport, _ = connect(hello, http)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 16)
        await until(lambda: transport.written.count(b"HTTP/1.1 200") == 16)
        assert transport.writes == 1

    run(main())


def test_shutdown_answers_the_first_request_of_a_new_connection(serve):
    """A connection accepted just before shutdown is not idle: its request is answered, then it closes."""
    with serve(hello) as server:
        idle = server.connect()
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[0] == 200
        fresh = server.connect()
        wait_for(lambda: len(server.state.connections) == 2)
        server.call(server.server.handle_exit, signal.SIGTERM)
        wait_for(lambda: server.state.shutting_down)
        # The connection that was served and is idle closes at once; the new one waits for its request.
        assert recv_all(idle) == b""
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(fresh)
        assert (status, headers[b"connection"], body) == (200, b"close", b"hello")
        assert recv_all(fresh) == b""
        server.thread.join(10)
        assert not server.thread.is_alive()


def test_shutdown_does_not_wait_long_for_a_silent_new_connection(serve):
    with serve(hello) as server:
        silent = server.connect()
        wait_for(lambda: len(server.state.connections) == 1)
        server.call(server.server.handle_exit, signal.SIGTERM)
        # Closed after the grace (one second, checked by the once-a-second sweep).
        data, waited = closed_after(silent)
        assert data == b"" and 0.9 <= waited <= 3.0
        server.thread.join(10)
        assert not server.thread.is_alive()

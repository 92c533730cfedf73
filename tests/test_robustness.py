"""Faults that take a server down slowly: the sweep, deadlines, the body timeout,
our own exceptions, the pipelining cap, shutdown races, half-closed clients,
the lifespan's bounds and both builds agreeing."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import pytest

from fastserve import Config, Server
from fastserve.protocols.http1 import MAX_PIPELINED, READ_HIGH_WATER
from tests.apps import echo, hello, read_body
from tests.conftest import closed_after, read_response, recv_all, recv_until, run_server, wait_for


class Gate:
    """An app that answers every request with its path, once ``release`` is set (for paths starting /wait)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.events: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["path"].startswith("/wait"):
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


# The sweep ---------------------------------------------------------------


class BrokenConnection:
    """A connection whose deadline check raises: a fault of ours, injected."""

    def __init__(self) -> None:
        self.checks = 0
        self.connections: set | None = None

    def check_deadline(self, now: float) -> None:
        self.checks += 1
        raise RuntimeError("injected deadline fault")

    def shutdown(self) -> None:
        self.checks = -1  # (from now on, closing it works)
        raise RuntimeError("injected shutdown fault")

    def close(self) -> None:
        # The sweep closes it after each fault, in vain: it stays, so that the next sweep meets it again.
        if self.checks < 0 and self.connections is not None:
            self.connections.discard(self)


@pytest.mark.tracebacks("Checking the deadline of a connection failed", "Shutting down a connection failed")
def test_sweep_goes_on_after_a_connection_fails(caplog):
    """A connection whose deadline check (or shutdown) raises is logged and closed; the others are served."""
    caplog.set_level(logging.ERROR, logger="fastserve.error")
    broken = BrokenConnection()
    with run_server(hello, timeout_request_header=2) as server:
        broken.connections = server.state.connections
        server.call(server.state.connections.add, broken)
        wait_for(lambda: broken.checks >= 1)
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            data, waited = closed_after(sock)
        assert broken.checks >= 2  # the sweep ran again after the fault
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.9 <= waited <= 4.0
    faults = [record for record in caplog.records if record.exc_info and "injected" in str(record.exc_info[1])]
    assert faults and "deadline" in faults[0].getMessage()
    assert "Shutting down a connection failed" in faults[-1].getMessage()


# Exceptions of ours in parser callbacks ----------------------------------


@pytest.mark.tracebacks("Exception while handling a request from ")
def test_exception_in_a_callback_is_a_500_with_traceback(serve, caplog):
    caplog.set_level(logging.WARNING, logger="fastserve.error")
    with serve(hello, proxy_headers=True, forwarded_allow_ips="*") as server:

        def resolve(*args):
            raise LookupError("resolver down")

        server.state.proxy.resolve = resolve
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
            data, _ = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 500 ")
    (record,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and isinstance(record.exc_info[1], LookupError)


def test_parser_error_stays_a_400_with_one_line(serve, caplog):
    caplog.set_level(logging.WARNING, logger="fastserve.error")
    with serve(hello) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        data, _ = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 400 ")
    (record,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING and record.exc_info is None


# Deadlines -----------------------------------------------------------------


def test_pipelined_head_keeps_its_header_deadline(serve):
    # The first response completes while the second head is on its way: that
    # head must still time out after --timeout-request-header, not keep-alive's.
    with serve(hello, timeout_keep_alive=30, timeout_request_header=1) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"hello")
        data, waited = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert waited <= 3.0


def test_keep_alive_deadline_still_closes_an_idle_connection(serve):
    with serve(hello, timeout_keep_alive=2, timeout_request_header=30) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        data, waited = closed_after(sock)
    assert data == b""
    assert 0.9 <= waited <= 4.0


def test_idle_connection_drops_its_parser_and_serves_the_next_request(serve):
    # Between requests the sweep lets an idle connection's parser go; the next
    # bytes, a head split across reads and a chunked body among them, get a new one.
    with serve(echo, timeout_keep_alive=30) as server, server.connect() as sock:
        sock.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        (connection,) = wait_for_connection(server)
        wait_for(lambda: connection.parser is None and connection.parser_asleep)
        sock.sendall(b"POST /second HTTP/1.1\r\nHost: x\r\nTransfer-")
        wait_for(lambda: connection.parser is not None)
        sock.sendall(b"Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, headers[b"x-path"], body) == (200, b"/second", b"abc")
        status, headers, _ = read_response(sock)
        assert (status, headers[b"x-path"]) == (200, b"/third")


def test_malformed_request_after_the_parser_slept_is_refused(serve):
    with serve(echo, timeout_keep_alive=30) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        (connection,) = wait_for_connection(server)
        wait_for(lambda: connection.parser_asleep)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
        assert recv_all(sock).startswith(b"HTTP/1.1 400 ")
        with server.connect() as other:
            other.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[0] == 200


# The body timeout -------------------------------------------------------------
# (Deadlines are checked once a second against a clock that ticks once a
# second, so a timeout of 2 s fires after 1 to 3 s.)


class BodyReader:
    """Reads the whole body, then answers with what it saw (unless the client is gone)."""

    def __init__(self, answer_first: bool = False, hold: threading.Event | None = None) -> None:
        self.answer_first = answer_first
        self.hold = hold
        self.messages: list[str] = []
        self.done = threading.Event()

    async def __call__(self, scope, receive, send):
        if self.answer_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"early,", "more_body": True})
        if self.hold is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 10)
        try:
            while True:
                message = await receive()
                self.messages.append(message["type"])
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
            if self.messages[-1] == "http.request":
                if not self.answer_first:
                    await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"got it"})
        finally:
            self.done.set()


def test_body_timeout_answers_408_and_tells_the_app(serve):
    app = BodyReader()
    with serve(app, timeout_request_body=2) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        data, waited = closed_after(sock)
        assert app.done.wait(5)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.9 <= waited <= 4.0
    assert app.messages[-1] == "http.disconnect"


def test_body_timeout_after_the_head_left_closes_the_connection(serve):
    app = BodyReader(answer_first=True)
    with serve(app, timeout_request_body=2) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        data, waited = closed_after(sock)
        assert app.done.wait(5)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"early,\r\n")  # cut, no last chunk
    assert 0.9 <= waited <= 4.0
    assert app.messages[-1] == "http.disconnect"


def test_body_timeout_counts_from_the_last_bytes(serve):
    app = BodyReader()
    with serve(app, timeout_request_body=2) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        for byte in b"abcd":  # 2.4 s in all, never 1 s without a byte (the sweep's clock is 1 s coarse)
            time.sleep(0.6)
            sock.sendall(bytes([byte]))
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"got it")


def test_body_timeout_does_not_run_while_the_app_does_not_read():
    # The server stops reading (flow control) while the app holds the body back:
    # the client is not slow, and must not be timed out.
    hold = threading.Event()
    app = BodyReader(hold=hold)
    size = 4 * READ_HIGH_WATER
    with run_server(app, timeout_request_body=2) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        sender = threading.Thread(target=sock.sendall, args=(b"x" * size,))
        sender.start()
        wait_for(lambda: any(connection.read_paused for connection in server.state.connections))
        time.sleep(4.5)  # the time under test: reading stays paused longer than the timeout
        hold.set()
        status, _, body = read_response(sock)
        sender.join(5)
    assert (status, body) == (200, b"got it")


def test_body_timeout_does_not_run_before_100_continue(serve):
    """A client that sent Expect: 100-continue waits for the 100 before its body: no timeout until the app reads."""
    hold = threading.Event()
    app = BodyReader(hold=hold)
    with serve(app, timeout_request_body=1) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        begun = server.state.now
        wait_for(lambda: server.state.now >= begun + 3, timeout=6)  # the time under test: three sweeps, no 408
        sock.settimeout(0.1)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # neither a 100 (the app has not read) nor a 408
        hold.set()  # the app reads: the server says 100 Continue, and the client sends its body
        assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"body")
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"got it")


def test_body_timeout_zero_is_off():
    app = BodyReader()
    with run_server(app, timeout_request_body=0) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na")
        sock.settimeout(2.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # the time under test: no answer, no close
        sock.sendall(b"b")
        assert read_response(sock)[2] == b"got it"


# The pipelining cap and the head size -------------------------------------------


def pipelined_request(index: int, with_bodies: bool) -> bytes:
    if with_bodies and index % 3 == 1:
        return b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" % index
    if with_bodies and index % 3 == 2:
        return b"PUT /%d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" % index
    return b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % index


@pytest.mark.parametrize("with_bodies", [False, True], ids=["gets", "with-bodies"])
def test_pipeline_cap_is_hard_and_nothing_is_lost(serve, with_bodies):
    gate = Gate()
    count = 2000 if not with_bodies else 600
    requests = b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n" + b"".join(
        pipelined_request(index, with_bodies) for index in range(1, count)
    )
    with serve(gate) as server, server.connect(timeout=10) as sock:
        (connection,) = wait_for_connection(server)
        sock.sendall(requests)
        wait_for(lambda: len(connection.pipeline) >= MAX_PIPELINED and connection.parked is not None)
        assert len(connection.pipeline) == MAX_PIPELINED
        gate.release.set()
        paths = [read_response(sock, timeout=10)[2] for _ in range(count)]
    assert paths == [b"/wait"] + [b"/%d" % index for index in range(1, count)]


def wait_for_connection(server) -> list:
    wait_for(lambda: len(server.state.connections) == 1)
    return list(server.state.connections)


def test_head_size_counts_only_the_head(serve):
    # A body and the start of the next head in one read: only the head's bytes count.
    with serve(echo_length, h11_max_incomplete_event_size=1024) as server, server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000 + b"GET / HTTP/1.1\r\n"
        )
        assert read_response(sock)[2] == b"5000"
        sock.sendall(b"Host: x\r\n\r\n")
        assert read_response(sock)[2] == b"0"


def test_head_over_the_limit_across_reads_is_431(serve):
    with serve(echo_length, h11_max_incomplete_event_size=1024) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nX-A: " + b"a" * 700)
        assert read_response(sock)[2] == b"3"
        sock.sendall(b"a" * 700)
        data, _ = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("pieces", [1, 3])
def test_head_size_limit_holds_however_the_head_arrives(serve, pieces):
    # --h11-max-incomplete-event-size bounds the whole head, in one read or several.
    fields = b"".join(b"X-Field-%d: %s\r\n" % (index, b"v" * 90) for index in range(12))  # about 1.3 KiB
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    with serve(echo_length, h11_max_incomplete_event_size=1024) as server, server.connect() as sock:
        step = -(-len(head) // pieces)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(head), step):
            sock.sendall(head[start : start + step])
        data, _ = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    with serve(echo_length, h11_max_incomplete_event_size=2048) as server, server.connect() as sock:
        sock.sendall(head)
        assert read_response(sock)[0] == 200


async def echo_length(scope, receive, send):
    body, _ = await read_body(receive)
    answer = b"%d" % len(body)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


# Shutdown, half-close ----------------------------------------------------------


def break_chunk(sock: socket.socket) -> None:
    sock.sendall(b"zz\r\n")


def half_close(sock: socket.socket) -> None:
    sock.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize(
    ("second", "then"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", break_chunk),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab", half_close),
    ],
    ids=["broken-body", "half-close"],
)
def test_request_dropped_by_shutdown_then_cut_short(serve, second, then):
    # Shutdown clears the pipeline; the request being parsed then ends badly.
    gate = Gate()
    with serve(gate) as server, server.connect() as sock:
        (connection,) = wait_for_connection(server)
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n" + second)
        wait_for(lambda: len(connection.pipeline) == 1)
        server.call(server.server.handle_exit, 15)
        wait_for(lambda: server.state.shutting_down and not connection.pipeline)
        then(sock)
        wait_for(lambda: connection.parser is None)
        gate.release.set()
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"/wait")
        assert recv_all(sock) == b""


def test_half_closed_client_gets_its_response(serve):
    gate = Gate()
    with serve(gate) as server, server.connect() as sock:
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\nGET /cut")
        sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: server.state.in_flight == 1)
        gate.release.set()
        assert read_response(sock)[2] == b"/wait"
        assert read_response(sock)[2] == b"/second"
        assert recv_all(sock) == b""  # then the server closes; the cut request is dropped


# Lifespan and heartbeat -----------------------------------------------------------


def test_lifespan_shutdown_is_bounded(caplog):
    caplog.set_level(logging.ERROR, logger="fastserve.error")
    cancelled = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            try:
                await asyncio.sleep(60)  # a shutdown that never ends
            except asyncio.CancelledError:
                cancelled.set()
                raise
        else:
            await hello(scope, receive, send)

    started = time.monotonic()
    with run_server(app, lifespan="on", timeout_lifespan_shutdown=1) as server:
        server.stop(timeout=10)
    assert time.monotonic() - started < 5
    assert cancelled.is_set()
    assert any("did not complete within 1 s" in record.getMessage() for record in caplog.records)


def test_failed_startup_leaves_no_lifespan_task():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        await receive()  # waits for a shutdown that will not come

    async def main() -> bool:
        server = Server(Config(app, port=0, lifespan="on", log_config=None))
        await server.serve()
        return server.lifespan._task.done()

    assert asyncio.run(main())


@pytest.mark.tracebacks("The heartbeat callback failed")
def test_heartbeat_tasks_are_kept_and_their_failures_logged(caplog):
    caplog.set_level(logging.ERROR, logger="fastserve.error")
    beats = threading.Event()

    async def heartbeat():
        await asyncio.sleep(0)
        beats.set()
        raise RuntimeError("arbiter unreachable")

    with run_server(hello, callback_notify=heartbeat, timeout_notify=0):
        assert beats.wait(5)
        wait_for(lambda: heartbeat_failures(caplog))
    assert isinstance(heartbeat_failures(caplog)[0].exc_info[1], RuntimeError)


def heartbeat_failures(caplog) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "fastserve.error" and record.getMessage() == "The heartbeat callback failed"
    ]


@pytest.mark.tracebacks("Exception in ASGI application")
def test_error_answer_to_head_has_no_body(serve):
    async def app(scope, receive, send):
        raise RuntimeError("app bug")

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = closed_after(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ") and b"content-length: 21" in head
    assert body == b""


# Both builds alike --------------------------------------------------------------


@pytest.mark.tracebacks("Exception in ASGI application")
def test_response_content_length_beyond_64_bits_is_refused(serve, caplog):
    caplog.set_level(logging.ERROR, logger="fastserve.error")

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % 2**63)]})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 500 ")
    (record,) = [record for record in caplog.records if record.exc_info]
    assert "Invalid response Content-Length" in str(record.exc_info[1])

"""Request rules both parsers keep: a broken body ends the exchange, any token is a method,
field values lose their surrounding whitespace."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading

import pytest

from tests.apps import echo, read_body, scope_app
from tests.conftest import read_response, recv_all, wait_for
from tests.test_flow import connect, until

BROKEN_BODIES = {
    "chunk size not hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "chunk size over 64 bits": b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk data without CRLF": b"3\r\nabcXY0\r\n\r\n",
}
PIPELINED_AFTER = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"


def answering_app(outcome: dict, started: threading.Event | None = None):
    """Reads the body, ignores http.disconnect, and answers 200 all the same."""

    async def app(scope, receive, send):
        messages = []
        while True:
            message = await receive()
            messages.append(message["type"])
            if started is not None:
                started.set()
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        outcome["messages"] = messages
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        except OSError as exc:
            outcome["send"] = exc
        outcome["done"] = True

    return app


@pytest.mark.parametrize("broken", list(BROKEN_BODIES))
def test_broken_body_in_the_first_read_gets_only_the_400(serve, broken):
    outcome: dict = {}
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(answering_app(outcome)) as server, server.connect() as sock:
        sock.sendall(head + b"2\r\nhi\r\n" + BROKEN_BODIES[broken] + PIPELINED_AFTER)
        response = recv_all(sock)
        wait_for(lambda: outcome.get("done"))
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert response.count(b"HTTP/1.1") == 1 and b"200" not in response
    assert outcome["messages"][-1] == "http.disconnect"
    assert isinstance(outcome["send"], OSError)


@pytest.mark.parametrize("broken", list(BROKEN_BODIES))
def test_broken_body_while_the_app_waits_gets_only_the_400(serve, broken):
    outcome: dict = {}
    started = threading.Event()
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(answering_app(outcome, started)) as server, server.connect() as sock:
        sock.sendall(head + b"2\r\nhi\r\n")
        assert started.wait(5)  # the app has the first chunk and waits for more
        sock.sendall(BROKEN_BODIES[broken] + PIPELINED_AFTER)
        response = recv_all(sock)
        wait_for(lambda: outcome.get("done"))
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert response.count(b"HTTP/1.1") == 1
    assert outcome["messages"] == ["http.request", "http.disconnect"]
    assert isinstance(outcome["send"], OSError)


def test_broken_body_after_the_head_left_cuts_the_response(serve):
    """The app streams its answer before reading the body: the stream is cut, never terminated."""
    outcome: dict = {}
    first_chunk_sent = threading.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        first_chunk_sent.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await send({"type": "http.response.body", "body": b"rest"})
        except OSError as exc:
            outcome["send"] = exc

    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(app) as server, server.connect() as sock:
        sock.sendall(head)
        assert first_chunk_sent.wait(5)
        sock.sendall(b"2\r\nhi\r\nzz\r\n" + PIPELINED_AFTER)
        response = recv_all(sock)
        wait_for(lambda: "send" in outcome)
    head_part, _, body = response.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head_part
    assert body == b"4\r\npart\r\n"  # no "rest", no terminating chunk, no 400 glued on
    assert isinstance(outcome["send"], OSError)


def test_body_cut_short_by_a_half_close_gets_nothing(serve):
    outcome: dict = {}
    with serve(answering_app(outcome)) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        sock.shutdown(socket.SHUT_WR)
        response = recv_all(sock)
        wait_for(lambda: outcome.get("done"))
    assert response == b""
    assert outcome["messages"][-1] == "http.disconnect"
    assert isinstance(outcome["send"], OSError)


def test_intact_body_still_answered(serve):
    """The control case: the same app, a well-formed body, a 200."""
    outcome: dict = {}
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(answering_app(outcome)) as server, server.connect() as sock:
        sock.sendall(head + b"2\r\nhi\r\n0\r\n\r\n")
        assert read_response(sock)[0] == 200


EXTENSION_METHODS = ["PURGEX", "MKWORKSPACE", "X-MY-VERB", "get", "PLAY", "DESCRIBE", "M_1.!#$%&'*+^`|~"]


def method_app():
    async def app(scope, receive, send):
        body, _ = await read_body(receive)
        answer = json.dumps({"method": scope["method"], "path": scope["path"], "body": body.decode()}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    return app


def answers(sock, count):
    return [json.loads(read_response(sock)[2]) for _ in range(count)]


@pytest.mark.parametrize("method", EXTENSION_METHODS)
def test_extension_method_reaches_the_app(serve, method):
    with serve(method_app()) as server, server.connect() as sock:
        sock.sendall(f"{method} /x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answers(sock, 1) == [{"method": method, "path": "/x", "body": ""}]
        # The connection goes on, on the fast parser for known methods.
        sock.sendall(b"GET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answers(sock, 1) == [{"method": "GET", "path": "/y", "body": ""}]


def test_extension_methods_pipelined_between_known_ones(serve):
    with serve(method_app()) as server, server.connect() as sock:
        sock.sendall(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PURGEX /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            b"\r\nMKWORKSPACE /4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
            b"X-MY-VERB /5 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"DELETE /6 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        got = answers(sock, 6)
    assert [(a["method"], a["path"], a["body"]) for a in got] == [
        ("GET", "/1", ""),
        ("PURGEX", "/2", "hello"),
        ("POST", "/3", "abc"),
        ("MKWORKSPACE", "/4", "hi"),
        ("X-MY-VERB", "/5", ""),
        ("DELETE", "/6", ""),
    ]


def in_head(server) -> bool:
    return any(connection.in_head for connection in list(server.state.connections))


def body_arrived(seen, size):
    return lambda: sum(len(part) for part in seen) >= size


@pytest.mark.parametrize(
    "first, second",
    [
        # The method itself split between reads.
        (b"PUR", b"GEX /x HTTP/1.1\r\nHost: x\r\n\r\n"),
        # A head split between reads, then an extension method in the same read as its end.
        (b"GET /a HTTP/1.1\r\nHo", b"st: x\r\n\r\nPURGEX /x HTTP/1.1\r\nHost: x\r\n\r\n"),
        # A request before it in the first read, and the extension method's head split.
        (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPURGEX /x HT", b"TP/1.1\r\nHost: x\r\n\r\n"),
    ],
)
def test_extension_method_after_a_split_read(serve, first, second):
    with serve(method_app()) as server, server.connect() as sock:
        sock.sendall(first)
        wait_for(lambda: in_head(server))
        sock.sendall(second)
        got = answers(sock, (first + second).count(b"HTTP/1.1"))
    assert got[-1] == {"method": "PURGEX", "path": "/x", "body": ""}


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_extension_method_after_a_body_split_between_reads(serve, framing):
    seen: list[bytes] = []

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            seen.append(message["body"])
            body += message["body"]
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-method", scope["method"].encode())]})
        await send({"type": "http.response.body", "body": body})

    if framing == "chunked":
        head = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        first, second = head + b"5\r\nhel", b"lo\r\n0\r\n\r\n"
    else:
        head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
        first, second = head + b"hel", b"lo"
    with serve(app) as server, server.connect() as sock:
        sock.sendall(first)
        wait_for(body_arrived(seen, 3))
        sock.sendall(second + b"PURGEX /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        responses = [read_response(sock) for _ in range(2)]
    assert [(headers[b"x-method"], body) for _, headers, body in responses] == [(b"POST", b"hello"), (b"PURGEX", b"ok")]


@pytest.mark.parametrize("method", [b"G@T", b"GE(T", b"G\x7fT", b"\xffGET"])
def test_method_that_is_not_a_token_is_refused(serve, method):
    with serve(echo) as server, server.connect() as sock:
        sock.sendall(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = recv_all(sock)
    assert response.startswith(b"HTTP/1.1 400 ")


def test_pri_outside_the_http2_preface_is_refused(serve):
    with serve(echo) as server, server.connect() as sock:
        sock.sendall(b"PRI / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_all(sock).startswith(b"HTTP/1.1 400 ")


PIPELINE = (
    b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    b"PURGEX /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    b"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
    b"MKWORKSPACE /4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nf\r\n0\r\n\r\n"
    b"get /5 HTTP/1.1\r\nHost: x\r\n\r\n"
)
PIPELINE_SEEN = [
    ("GET", "/1", b""),
    ("PURGEX", "/2", b"abc"),
    ("POST", "/3", b"de"),
    ("MKWORKSPACE", "/4", b"f"),
    ("get", "/5", b""),
]


async def feed_in_pieces(http, cuts):
    seen = []

    async def app(scope, receive, send):
        body, _ = await read_body(receive)
        seen.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protocol, transport, state = connect(app, http)
    start = 0
    for cut in [*cuts, len(PIPELINE)]:
        await until(lambda: transport.reading)
        protocol.data_received(PIPELINE[start:cut])
        start = cut
        for _ in range(5):
            await asyncio.sleep(0)
    await until(lambda: len(seen) == len(PIPELINE_SEEN) or transport.closed)
    return seen, bytes(transport.written)


def test_extension_methods_whatever_the_reads(http):
    """Every place the pipeline can be split in two, and a spread of splits in three."""
    cut_sets = [[i] for i in range(1, len(PIPELINE))]
    cut_sets += [[i, j] for i in range(1, len(PIPELINE), 7) for j in range(i + 1, len(PIPELINE), 11)]

    async def all_cuts():
        for cuts in cut_sets:
            seen, written = await feed_in_pieces(http, cuts)
            assert seen == PIPELINE_SEEN, cuts
            assert written.count(b"HTTP/1.1 204") == len(PIPELINE_SEEN), cuts

    asyncio.run(all_cuts())


def test_field_values_lose_surrounding_whitespace(serve):
    with serve(scope_app) as server, server.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x \t\r\nX-Padded: \t  inner  value \t \r\nX-Tab:\tv\t\r\nX-Empty:  \t \r\n\r\n"
        )
        headers = dict(json.loads(read_response(sock)[2])["headers"])
    assert headers["host"] == "x"
    assert headers["x-padded"] == "inner  value"
    assert headers["x-tab"] == "v"
    assert headers["x-empty"] == ""


def test_upgrade_request_after_an_extension_method_is_answered_as_plain_http(serve, caplog):
    caplog.set_level(logging.DEBUG, "fastserve.error")
    with serve(method_app()) as server, server.connect() as sock:
        sock.sendall(
            b"PURGEX /1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        first, second = answers(sock, 2)
        assert recv_all(sock) == b""  # closed after the upgrade request's answer
    assert (first["method"], second["path"]) == ("PURGEX", "/2")
    assert "Invalid HTTP request" not in caplog.text
    # An upgrade nobody asked the server for is no warning: the client goes on in HTTP/1.1.
    (record,) = [record for record in caplog.records if "Upgrade request from 127.0.0.1:" in record.getMessage()]
    assert record.levelno == logging.DEBUG and "answered in HTTP/1.1" in record.getMessage()


def test_endless_trailer_section_is_refused(serve):
    """httptools keeps a field until it ends: a trailer that never ends must not grow the server."""
    sent = {"error": None}

    def send_all(sock):
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Big: ")
            for _ in range(128):  # 8 MiB of one trailer value
                sock.sendall(b"v" * 65536)
        except OSError as exc:
            sent["error"] = exc

    with serve(echo) as server, server.connect(timeout=10) as sock:
        sender = threading.Thread(target=send_all, args=(sock,))
        sender.start()
        try:
            response = recv_all(sock, timeout=10)
        except ConnectionResetError:
            response = b""
        sender.join(10)
        assert not sender.is_alive()
        assert sent["error"] is not None, "the server read the whole trailer"
        assert response == b"" or response.startswith(b"HTTP/1.1 431 ")
        with server.connect() as again:
            again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert recv_all(again).startswith(b"HTTP/1.1 200 ")


def test_trailer_bound_starts_over_with_each_request(serve):
    def request(trailer_size):
        return (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Big: "
            + b"v" * trailer_size
            + b"\r\n\r\n"
        )

    with serve(echo) as server, server.connect(timeout=10) as sock:
        sock.sendall(request(700 * 1024))
        assert read_response(sock, timeout=10)[0] == 200
        sock.sendall(request(400 * 1024))  # within the bound alone, not with the one before
        assert read_response(sock, timeout=10)[0] == 200

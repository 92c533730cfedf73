"""WebSockets end to end: the websockets client library, and raw frames on raw sockets, on both engines."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import threading
import zlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fastserve.protocols.websocket import WebSocketSettings
from tests.conftest import (
    _unread,
    all_read,
    client_context,
    closed_after,
    read_response,
    recv_all,
    recv_until,
    run_server,
    wait_for,
)
from tests.test_websocket_frames import client_frame

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KEY = base64.b64encode(b"0123456789abcdef")
# Each engine behind a different parser (the handover test covers every pair).
ENGINES = [("auto", "httptools"), ("wsproto", "h11")]


@pytest.fixture(params=ENGINES, ids=[f"{ws}-{http}" for ws, http in ENGINES])
def serve_ws(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    ws, http = request.param
    readers: list[str] = []
    make_reader = WebSocketSettings.reader

    def reader(self: WebSocketSettings, deflate: Any) -> Any:
        made = make_reader(self, deflate)
        readers.append(type(made).__name__)
        return made

    monkeypatch.setattr(WebSocketSettings, "reader", reader)

    def start(app: Any, **options: Any) -> Any:
        options.setdefault("ws", ws)
        options.setdefault("http", http)
        return run_server(app, **options)

    yield start
    # The engine the test is named for is the one that read the frames (when a session opened).
    expected = "WsprotoReader" if ws == "wsproto" else "FrameReader"
    assert set(readers) <= {expected}, readers


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def url(server: Any, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes messages; "close <code> <reason>" makes it close; records what it saw in scope["state"]."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    subprotocols = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": subprotocols[-1] if subprotocols else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            EVENTS.append(message)
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            _, code, reason = text.split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            EVENTS.append(await receive())
            return
        await send({"type": "websocket.send", "text": text, "bytes": message.get("bytes")})


EVENTS: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def clear_events() -> None:
    EVENTS.clear()


def handshake_request(path: str = "/", extra: bytes = b"", key: bytes = KEY) -> bytes:
    return (
        b"GET %s HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path.encode(), key, extra)
    )


def open_raw(server: Any, extra: bytes = b"", after: bytes = b"") -> socket.socket:
    """A raw socket past the handshake (``after`` goes in the same write as the handshake)."""
    sock = server.connect()
    sock.sendall(handshake_request(extra=extra) + after)
    head = recv_until(sock, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    PENDING[sock] = head.partition(b"\r\n\r\n")[2]
    return sock


PENDING: dict[socket.socket, bytes] = {}


def read_frame(sock: socket.socket, timeout: float = 5.0) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame the server sends."""
    sock.settimeout(timeout)
    buffer = PENDING.pop(sock, b"")

    def need(size: int) -> None:
        nonlocal buffer
        while len(buffer) < size:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before a whole frame"
            buffer += chunk

    need(2)
    first, second = buffer[0], buffer[1]
    assert not second & 0x80, "server frames are not masked"
    length, start = second & 0x7F, 2
    if length == 126:
        need(4)
        length, start = struct.unpack("!H", buffer[2:4])[0], 4
    elif length == 127:
        need(10)
        length, start = struct.unpack("!Q", buffer[2:10])[0], 10
    need(start + length)
    PENDING[sock] = buffer[start + length :]
    return first & 0x0F, buffer[start : start + length]


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0]


def expect_close(sock: socket.socket, code: int) -> None:
    """The server's next frames end with a close frame carrying ``code``, then the connection closes."""
    while True:
        opcode, payload = read_frame(sock)
        if opcode == OP_CLOSE:
            assert close_code(payload) == code, payload
            break
    sock.sendall(client_frame(OP_CLOSE, payload[:2]))
    assert closed_after(sock)[0] == b""
    sock.close()


# The handover and the ASGI scope ----------------------------------------------------


async def ok_or_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ "ok" to an HTTP request, echo to a WebSocket."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await echo(scope, receive, send)


@pytest.mark.parametrize("first", [b"GET", b"PURGEX"])  # (llhttp hands an extension method to h11)
@pytest.mark.parametrize("ws", ["auto", "wsproto"])
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_handover_keeps_the_bytes_after_the_handshake_and_answers_pipelined_requests_first(http, ws, first):
    with run_server(ok_or_echo, http=http, ws=ws) as server:
        sock = server.connect()
        # A request, then the handshake, then a frame: all in one write.
        sock.sendall(
            first + b" /first HTTP/1.1\r\nHost: a\r\n\r\n" + handshake_request() + client_frame(OP_TEXT, b"early")
        )
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"ok")
        head = _unread.pop(sock, b"")
        if b"\r\n\r\n" not in head:
            head += recv_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert (
            b"sec-websocket-accept: "
            + base64.b64encode(__import__("hashlib").sha1(KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            in head
        )
        PENDING[sock] = head.partition(b"\r\n\r\n")[2]
        assert read_frame(sock) == (OP_TEXT, b"early")
        sock.sendall(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
        assert read_frame(sock)[0] == OP_CLOSE
        assert closed_after(sock)[0] == b""


def test_a_frame_sent_before_the_app_accepts_is_delivered_after(serve_ws):
    # The client does not wait for the 101: its first frame comes while the app has not answered.
    may_accept = threading.Event()

    async def slow_accept(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await asyncio.get_running_loop().run_in_executor(None, may_accept.wait, 10)
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        EVENTS.append(await receive())

    with serve_ws(slow_accept) as server:
        sock = server.connect()
        sock.sendall(handshake_request())
        sock.sendall(client_frame(OP_TEXT, b"early"))
        may_accept.set()
        head = recv_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        PENDING[sock] = head.partition(b"\r\n\r\n")[2]
        assert read_frame(sock) == (OP_TEXT, b"early")
        sock.sendall(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
        assert read_frame(sock)[0] == OP_CLOSE
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def test_a_session_counts_against_limit_concurrency(serve_ws):
    """A WebSocket session is an app call like a request (cycle.AppCycle): at --limit-concurrency 1, while
    one is open, an HTTP request and a second handshake get 503; once it has closed, both are served."""

    with serve_ws(ok_or_echo, limit_concurrency=1) as server:
        session = open_raw(server)
        assert httpx.get(server.url("/")).status_code == 503
        refused = server.connect()
        refused.sendall(handshake_request())
        assert recv_until(refused, b"\r\n\r\n").startswith(b"HTTP/1.1 503 ")
        refused.close()
        session.sendall(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
        assert read_frame(session)[0] == OP_CLOSE
        wait_for(lambda: server.state.in_flight == 0)
        assert httpx.get(server.url("/")).status_code == 200
        open_raw(server).close()


def test_the_scope(serve_ws):
    scopes = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"x-extra", b"yes")]})
        await send({"type": "websocket.close"})

    with serve_ws(app, root_path="/root") as server:

        async def main() -> None:
            async with connect(url(server, "/p%20q/r?a=1&b=2"), subprotocols=["one", "two"]) as client:
                assert client.response.headers["x-extra"] == "yes"
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 1000

        run(main())
    scope = scopes[0]
    assert scope["type"] == "websocket" and scope["scheme"] == "ws" and "method" not in scope
    assert scope["path"] == "/p q/r" and scope["raw_path"] == b"/p%20q/r" and scope["query_string"] == b"a=1&b=2"
    assert scope["root_path"] == "/root" and scope["http_version"] == "1.1"
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == ("127.0.0.1", server.port)
    assert (b"sec-websocket-version", b"13") in scope["headers"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["asgi"]["version"] == "3.0" and isinstance(scope["state"], dict)


def test_wss_over_tls(serve_ws, ca, server_files):
    schemes = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        schemes.append((scope["scheme"], "tls" in scope["extensions"]))
        await echo(scope, receive, send)

    options = {"ssl_certfile": server_files["certfile"], "ssl_keyfile": server_files["keyfile"]}
    with serve_ws(app, **options) as server:

        async def main() -> None:
            async with connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context(ca), max_size=None) as client:
                await client.send("secret")
                assert await client.recv() == "secret"
                big = os.urandom(1 << 20)
                await client.send(big)
                assert await client.recv() == big

        run(main())
    assert schemes == [("wss", True)]
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def test_wss_scheme_from_a_trusted_proxy(serve_ws):
    schemes = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        schemes.append(scope["scheme"])
        await send({"type": "websocket.close"})

    with serve_ws(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as server:
        sock = server.connect()
        sock.sendall(handshake_request(extra=b"X-Forwarded-Proto: https\r\n"))
        assert read_response(sock)[0] == 403
    assert schemes == ["wss"]


# Messages -------------------------------------------------------------------------


def test_echo_text_bytes_one_mib_and_subprotocols(serve_ws):
    with serve_ws(echo) as server:

        async def main() -> None:
            async with connect(url(server), subprotocols=["a", "b"], max_size=None) as client:
                assert client.subprotocol == "b"
                await client.send("héllo")
                assert await client.recv() == "héllo"
                await client.send(b"\x00\xff")
                assert await client.recv() == b"\x00\xff"
                big = os.urandom(1 << 20)
                await client.send(big)
                assert await client.recv() == big
                await client.send("x" * (1 << 20))
                assert await client.recv() == "x" * (1 << 20)
                await client.send(["frag", "mented"])  # a fragmented message
                assert await client.recv() == "fragmented"

        run(main())
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def test_fragments_interleaved_with_pings(serve_ws):
    with serve_ws(echo) as server:
        sock = open_raw(server)
        sock.sendall(
            client_frame(OP_TEXT, b"one ", fin=False)
            + client_frame(OP_PING, b"p1")
            + client_frame(OP_CONT, b"two ", fin=False)
            + client_frame(OP_PING, b"p2")
            + client_frame(OP_CONT, b"three")
        )
        assert read_frame(sock) == (OP_PONG, b"p1")
        assert read_frame(sock) == (OP_PONG, b"p2")
        assert read_frame(sock) == (OP_TEXT, b"one two three")
        sock.sendall(client_frame(OP_CLOSE, struct.pack("!H", 1001) + b"gone"))
        opcode, payload = read_frame(sock)
        assert opcode == OP_CLOSE and close_code(payload) == 1001
        assert closed_after(sock)[0] == b""
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1001, "reason": "gone"}]


def test_server_close_with_code_and_reason(serve_ws):
    with serve_ws(echo) as server:

        async def main() -> None:
            async with connect(url(server)) as client:
                await client.send("close 4321 " + "é" * 100)  # the reason is cut to 123 bytes
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 4321
                assert client.close_reason == "é" * 61

        run(main())
    assert EVENTS == [{"type": "websocket.disconnect", "code": 4321, "reason": "é" * 100}]


def test_abrupt_drop_is_1006(serve_ws):
    with serve_ws(echo) as server:
        sock = open_raw(server)
        sock.sendall(client_frame(OP_TEXT, b"hi"))
        assert read_frame(sock) == (OP_TEXT, b"hi")
        sock.close()
        wait_for(lambda: EVENTS)
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


# Limits and broken frames -----------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(lambda: client_frame(OP_BINARY, b"x" * 1025), id="one-frame"),
        pytest.param(
            lambda: client_frame(OP_BINARY, b"x" * 600, fin=False) + client_frame(OP_CONT, b"x" * 600),
            id="two-fragments",
        ),
        # A header announcing 2**62 bytes: refused from the header alone.
        pytest.param(lambda: bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 62) + b"MASK", id="64-bit-length"),
    ],
)
def test_oversize_message_is_1009(serve_ws, frames):
    with serve_ws(echo, ws_max_size=1024) as server:
        sock = open_raw(server)
        sock.sendall(frames())
        expect_close(sock, 1009)
    assert EVENTS[0]["code"] == 1009


def test_many_empty_fragments_are_1009(serve_ws):
    # Each continuation frame costs its header against the limit: a run of empty ones ends.
    with serve_ws(echo, ws_max_size=1024) as server:
        sock = open_raw(server)
        sock.sendall(client_frame(OP_TEXT, b"", fin=False) + client_frame(OP_CONT, b"", fin=False) * 5000)
        expect_close(sock, 1009)


def test_a_message_in_small_fragments_is_delivered(serve_ws):
    # Autobahn 9.4.1 in small: a binary message in 64-byte fragments, far more than the old 4,096.
    message = bytes(range(256)) * 4096  # 1 MiB
    frames = b"".join(
        client_frame(OP_BINARY if start == 0 else OP_CONT, message[start : start + 64], fin=start + 64 >= len(message))
        for start in range(0, len(message), 64)
    )
    with serve_ws(echo) as server:
        sock = open_raw(server)
        sock.sendall(frames)
        assert read_frame(sock, timeout=20) == (OP_BINARY, message)
        sock.close()


def test_a_close_between_fragments_is_answered(serve_ws):
    # Autobahn 7.1.5: the close is answered with its code; the unfinished message is dropped.
    with serve_ws(echo) as server:
        sock = open_raw(server)
        sock.sendall(
            client_frame(OP_TEXT, b"frag", fin=False)
            + client_frame(OP_CLOSE, struct.pack("!H", 1000))
            + client_frame(OP_CONT, b"ment")
        )
        opcode, payload = read_frame(sock)
        assert opcode == OP_CLOSE and close_code(payload) == 1000
        assert closed_after(sock)[0] == b""
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def test_invalid_text_fails_before_its_frame_has_come(serve_ws):
    # Autobahn 6.4.3: the frame's invalid bytes have come, its end has not; the server closes at once.
    frame = client_frame(OP_TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"tail" * 8)
    with serve_ws(echo, ws_per_message_deflate=False) as server:
        sock = open_raw(server)
        sock.sendall(frame[:-20])
        expect_close(sock, 1007)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(client_frame(OP_TEXT, b"x", mask=False), 1002, id="unmasked"),
        pytest.param(client_frame(OP_TEXT, b"x", rsv1=True), 1002, id="rsv1-without-deflate"),
        pytest.param(bytes([0x83, 0x80]) + b"MASK", 1002, id="unknown-opcode"),
        pytest.param(client_frame(OP_PING, b"x" * 126), 1002, id="long-control"),
        pytest.param(client_frame(OP_PING, b"x", fin=False), 1002, id="fragmented-control"),
        pytest.param(client_frame(OP_CONT, b"x"), 1002, id="continuation-first"),
        pytest.param(client_frame(OP_TEXT, b"x", fin=False) + client_frame(OP_TEXT, b"y"), 1002, id="new-message"),
        pytest.param(client_frame(OP_CLOSE, struct.pack("!H", 1005)), 1002, id="bad-close-code"),
        pytest.param(client_frame(OP_CLOSE, b"\x03"), 1002, id="one-byte-close"),
        pytest.param(client_frame(OP_TEXT, b"\xff"), 1007, id="invalid-utf8"),
        pytest.param(
            client_frame(OP_TEXT, b"ok", fin=False) + client_frame(OP_CONT, b"\xc3\x28"),
            1007,
            id="invalid-utf8-in-fragment",
        ),
        pytest.param(client_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007, id="invalid-utf8-reason"),
    ],
)
def test_invalid_frames(serve_ws, frame, code):
    with serve_ws(echo, ws_per_message_deflate=False) as server:
        sock = open_raw(server)
        sock.sendall(frame)
        expect_close(sock, code)
    assert EVENTS[0]["code"] == code


# Compression --------------------------------------------------------------------------


def deflate_frame(data: bytes, opcode: int = OP_BINARY) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return client_frame(opcode, payload[:-4], rsv1=True)


def test_compression_negotiated_and_used(serve_ws):
    with serve_ws(echo) as server:

        async def main() -> None:
            async with connect(url(server)) as client:  # offers permessage-deflate
                assert "permessage-deflate" in client.response.headers["sec-websocket-extensions"]
                await client.send("a" * 100_000)
                assert await client.recv() == "a" * 100_000
            async with connect(url(server), compression=None) as client:
                assert "sec-websocket-extensions" not in client.response.headers
                await client.send("plain")
                assert await client.recv() == "plain"

        run(main())


def test_compression_off_by_flag(serve_ws):
    with serve_ws(echo, ws_per_message_deflate=False) as server:

        async def main() -> None:
            async with connect(url(server)) as client:
                assert "sec-websocket-extensions" not in client.response.headers
                await client.send("x")
                assert await client.recv() == "x"

        run(main())


def test_decompression_bomb_is_1009_and_bounded(serve_ws):
    sizes = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            sizes.append(len(message["bytes"]))
        EVENTS.append(message)

    with serve_ws(app, ws_max_size=1 << 20) as server:
        sock = open_raw(server, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        sock.sendall(deflate_frame(b"\x00" * 1000))
        # 1 GiB of zeros inflates from about a MiB: refused once the limit is passed, not after.
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = b"".join(compressor.compress(b"\x00" * (1 << 24)) for _ in range(64))
        bomb += compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
        assert len(bomb) < 1_100_000
        sock.sendall(client_frame(OP_BINARY, bomb, rsv1=True))
        expect_close(sock, 1009)
    assert sizes == [1000]
    assert EVENTS[0]["code"] == 1009


def test_compressed_frame_without_negotiation_is_1002(serve_ws):
    with serve_ws(echo) as server:
        sock = open_raw(server)
        sock.sendall(deflate_frame(b"hello"))
        expect_close(sock, 1002)


# Handshakes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(handshake_request(key=b""), 400, id="no-key"),
        pytest.param(handshake_request(key=b"short"), 400, id="bad-key"),
        pytest.param(handshake_request().replace(b"Version: 13", b"Version: 8"), 426, id="version-8"),
        pytest.param(handshake_request().replace(b"GET", b"POST"), 400, id="post"),
        pytest.param(
            handshake_request().replace(b"Connection: Upgrade", b"Connection: keep-alive"),
            400,
            id="no-connection-upgrade",
        ),
        pytest.param(handshake_request().replace(b"HTTP/1.1", b"HTTP/1.0"), 400, id="http-1.0"),
        pytest.param(handshake_request(extra=b"Content-Length: 3\r\n") + b"abc", 400, id="with-a-body"),
    ],
)
def test_invalid_handshakes_never_reach_the_app(serve_ws, request_bytes, status):
    calls = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope)

    with serve_ws(app) as server:
        sock = server.connect()
        sock.sendall(request_bytes)
        got, headers, _ = read_response(sock)
        assert got == status
        if status == 426:
            assert headers[b"sec-websocket-version"] == b"13"
        assert closed_after(sock)[0] == b""
    assert calls == []


def test_ws_none_leaves_the_upgrade_to_the_app(http):
    seen = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await send({"type": "http.response.start", "status": 404})
        await send({"type": "http.response.body"})

    with run_server(app, http=http, ws="none") as server:
        sock = server.connect()
        sock.sendall(handshake_request())
        assert read_response(sock)[0] == 404
    assert seen == ["http"]


def test_close_before_accept_is_403(serve_ws):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    with serve_ws(app) as server:

        async def main() -> None:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(url(server)):
                    pass
            assert caught.value.response.status_code == 403

        run(main())


@pytest.mark.parametrize("streamed", [False, True])
def test_denial_response(serve_ws, streamed):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"token")]})
        if streamed:
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})

    with serve_ws(app) as server:
        sock = server.connect()
        sock.sendall(handshake_request())
        status, headers, body = read_response(sock)
        assert (status, headers[b"x-why"], body) == (401, b"token", b"no entry" if streamed else b"entry")
        assert closed_after(sock)[0] == b""


@pytest.mark.tracebacks("Exception in ASGI application")
def test_exception_before_accept_is_500_and_after_is_1011(serve_ws):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/after":
            await send({"type": "websocket.accept"})
        raise RuntimeError("boom")

    with serve_ws(app) as server:

        async def main() -> None:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(url(server, "/before")):
                    pass
            assert caught.value.response.status_code == 500
            async with connect(url(server, "/after")) as client:
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 1011

        run(main())


def test_returning_without_close_is_1000_and_send_after_close_raises(serve_ws):
    errors = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        if scope["path"] == "/send-after-close":
            assert (await receive())["type"] == "websocket.disconnect"
            try:
                await send({"type": "websocket.send", "text": "late"})
            except OSError as exc:
                errors.append(exc)

    with serve_ws(app) as server:

        async def main() -> None:
            async with connect(url(server)) as client:
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 1000
            async with connect(url(server, "/send-after-close")) as client:
                await client.close(4000)

        run(main())
        wait_for(lambda: errors)


# Pings, backpressure, shutdown ---------------------------------------------------------


def test_ping_answered_and_silent_peer_closed_1011(serve_ws):
    with serve_ws(echo, ws_ping_interval=0.5, ws_ping_timeout=0.5) as server:
        sock = open_raw(server)
        opcode, payload = read_frame(sock)  # the server's ping (the sweep runs once a second)
        assert opcode == OP_PING
        sock.sendall(client_frame(OP_PONG, payload))
        opcode, payload = read_frame(sock)  # the next ping, which goes unanswered
        assert opcode == OP_PING
        opcode, payload = read_frame(sock)
        assert (opcode, close_code(payload)) == (OP_CLOSE, 1011)
        assert closed_after(sock)[0] == b""
    assert EVENTS[0]["code"] == 1011


def test_app_that_does_not_read_pauses_reading(serve_ws):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(3600)

    with serve_ws(app, ws_max_queue=4, timeout_graceful_shutdown=1) as server:
        sock = open_raw(server)
        sock.setblocking(False)
        frame = client_frame(OP_BINARY, b"x" * 60_000)
        sent = 0
        with pytest.raises(BlockingIOError):
            for _ in range(2000):  # 120 MB: the kernel's buffers fill once the server stops reading
                sent += sock.send(frame)
        (connection,) = server.state.connections
        wait_for(lambda: connection.read_paused)
        # --ws-max-queue, the connect event, and what the last read completed (two 60 kB frames of 64 KiB).
        assert len(connection.messages) <= 4 + 1 + 2
        assert sent < 20_000_000
        sock.close()


def test_client_that_does_not_read_makes_send_wait(serve_ws):
    sent = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            await send({"type": "websocket.send", "bytes": b"x" * 65536})
            sent.append(1)

    with serve_ws(app) as server:
        sock = open_raw(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        wait_for(lambda: len(sent) > 10)
        (connection,) = server.state.connections
        wait_for(lambda: connection.write_paused)
        count = len(sent)
        buffered = connection.transport.get_write_buffer_size()
        assert buffered < 4 * 65536 + 65536
        # Nothing more is sent while the client reads nothing (send() waits), however long the loop runs.
        server.sync(iterations=20)
        assert len(sent) <= count + 1
        # A ping flood while the server cannot write: it answers what one read brought, then reads no more.
        flood = client_frame(OP_PING, b"x" * 125) * 100
        sock.sendall(flood)
        server.sync(iterations=20)
        assert connection.read_paused
        sock.sendall(flood)
        server.sync(iterations=20)
        assert not all_read(server)  # the second flood waits in the kernel, unread
        assert connection.transport.get_write_buffer_size() <= buffered + 100 * (125 + 2)  # one flood's pongs
        sock.close()
        wait_for(lambda: server.state.connections == set())


def test_shutdown_closes_open_websockets_with_1012_and_refuses_pending_handshakes():
    late_accepts = []
    decided = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/pending":
            await receive()
            # Still deciding when the server shuts down: until the test has seen the handshake refused.
            await asyncio.get_running_loop().run_in_executor(None, decided.wait, 10)
            try:
                await send({"type": "websocket.accept"})
            except OSError as exc:
                late_accepts.append(exc)
            return
        await echo(scope, receive, send)

    with run_server(app) as server:
        pending = server.connect()
        pending.sendall(handshake_request("/pending"))
        sock = open_raw(server)
        sock.sendall(client_frame(OP_TEXT, b"hi"))
        assert read_frame(sock) == (OP_TEXT, b"hi")
        server.call(server.server.handle_exit, 15)
        opcode, payload = read_frame(sock)
        assert (opcode, close_code(payload)) == (OP_CLOSE, 1012)
        sock.sendall(client_frame(OP_CLOSE, payload[:2]))
        assert closed_after(sock)[0] == b""
        assert read_response(pending)[0] == 500
        decided.set()
        server.thread.join(10)
    assert EVENTS == [{"type": "websocket.disconnect", "code": 1012, "reason": ""}]
    assert len(late_accepts) == 1


# Frameworks -----------------------------------------------------------------------------


def test_starlette_and_fastapi_endpoints(serve_ws):
    async def starlette_echo(websocket: Any) -> None:
        await websocket.accept()
        async for message in websocket.iter_json():
            await websocket.send_json({"echo": message})

    api = FastAPI()

    @api.websocket("/items/{item}")
    async def items(websocket: WebSocket, item: str) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{item}:{text}")
        await websocket.close(code=4001)

    async def talk_to_starlette(server: Any) -> None:
        async with connect(url(server, "/json")) as client:
            await client.send(json.dumps({"a": 1}))
            assert json.loads(await client.recv()) == {"echo": {"a": 1}}

    async def talk_to_fastapi(server: Any) -> None:
        async with connect(url(server, "/items/7")) as client:
            await client.send("hi")
            assert await client.recv() == "7:hi"
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert client.close_code == 4001

    starlette = Starlette(routes=[WebSocketRoute("/json", starlette_echo)])
    for app, talk in ((starlette, talk_to_starlette), (api, talk_to_fastapi)):
        with serve_ws(app) as server:
            run(talk(server))


# What the README promises ---------------------------------------------------------------


@pytest.mark.parametrize("alias", ["websockets", "websockets-sansio"])
def test_uvicorn_engine_names_are_served_by_fastserve_own(alias, caplog, monkeypatch):
    """uvicorn's --ws websockets / websockets-sansio: accepted, served by fastserve's codec, said in one line."""
    readers = []
    make_reader = WebSocketSettings.reader

    def reader(self: WebSocketSettings, deflate: Any) -> Any:
        readers.append(make_reader(self, deflate))
        return readers[-1]

    monkeypatch.setattr(WebSocketSettings, "reader", reader)
    caplog.set_level(logging.INFO, "fastserve.error")
    with run_server(echo, ws=alias) as server:
        sock = open_raw(server)
        sock.sendall(client_frame(OP_TEXT, b"hi"))
        assert read_frame(sock) == (OP_TEXT, b"hi")
        sock.close()
    said = [record.getMessage() for record in caplog.records if "--ws" in record.getMessage()]
    assert said == [f"--ws {alias}: served by fastserve's own WebSocket implementation"]
    assert [type(made).__name__ for made in readers] == ["FrameReader"]


def test_close_handshake_waits_10_s_for_the_peer_close_frame():
    """The server's close frame unanswered: the connection closes 10 s later (the time under test)."""

    async def closes(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    with run_server(closes) as server:
        sock = open_raw(server)
        opcode, payload = read_frame(sock)
        assert (opcode, close_code(payload)) == (OP_CLOSE, 1000)
        data, waited = closed_after(sock, timeout=15)  # the client never answers the close frame
    assert data == b"" and 9.0 <= waited <= 11.5


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "in-parts"])
def test_denial_response_with_the_apps_content_length_has_one(serve_ws, streamed):
    """The app's Content-Length frames the denial's body: one such field, no chunking, no second length."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"6"), (b"transfer-encoding", b"chunked")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        if streamed:
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"way"})
        else:
            await send({"type": "websocket.http.response.body", "body": b"no way"})

    with serve_ws(app) as server:
        sock = server.connect()
        sock.sendall(handshake_request())
        response = recv_all(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    fields = [line.split(b":")[0].lower() for line in head.split(b"\r\n")[1:]]
    assert head.startswith(b"HTTP/1.1 401 ") and body == b"no way"
    assert fields.count(b"content-length") == 1 and b"transfer-encoding" not in fields

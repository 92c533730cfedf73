"""HTTP/2: negotiation (h2c prior knowledge, ALPN), the ASGI mapping, flow control, resets and shutdown.

Real clients on real sockets: httpx (with h2) and a raw h2 client (tests/h2_client.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import socket
import subprocess
import threading
import time

import h2.errors
import h2.events
import hpack
import httpx
import hyperframe.frame
import pytest

from fastserve.cli import version_line
from fastserve.config import Config, ConfigError
from fastserve.protocols import IMPLEMENTATION, compiled_http2
from fastserve.protocols.http1_switch import HTTP2_PREFACE as PREFACE
from fastserve.protocols.http2 import COMPILED_ENGINE, HTTP2Settings
from fastserve.protocols.http2_h2 import H2Engine
from tests.apps import echo, hello, scope_app
from tests.conftest import all_read, client_context, recv_all, recv_until, run_server, wait_for
from tests.h2_client import H2Client

pytestmark = pytest.mark.timeout(60)


ENGINES = {"h2": H2Engine, **({"nghttp2": COMPILED_ENGINE} if COMPILED_ENGINE is not None else {})}


@pytest.fixture(params=list(ENGINES))
def engine(request, monkeypatch):
    """Each test on each HTTP/2 engine built here (both where libnghttp2 was found at build time)."""
    monkeypatch.setattr(HTTP2Settings, "engine_class", ENGINES[request.param])
    return request.param


@pytest.fixture
def serve(engine, monkeypatch):
    """A server with HTTP/2 on (as by default), on the engine of the test (checked: every connection's)."""
    made = []
    make_engine = HTTP2Settings.engine

    def engine_of_the_test(self):
        connection_engine = make_engine(self)
        made.append(type(connection_engine))
        return connection_engine

    monkeypatch.setattr(HTTP2Settings, "engine", engine_of_the_test)

    def start(app, **options):
        options.setdefault("http2", True)
        return run_server(app, **options)

    yield start
    assert set(made) <= {ENGINES[engine]}, made


@pytest.fixture
def serve_each_parser(serve, http):
    """As serve, on each HTTP/1.1 parser too: for what the HTTP/1.1 protocol hands over."""

    def start(app, **options):
        options.setdefault("http", http)
        return serve(app, **options)

    return start


CHUNK = b"d" * 65536
DOWNLOAD_CHUNKS = 1024  # 64 MiB


async def download(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-test")]})
    for _ in range(DOWNLOAD_CHUNKS - 1):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": CHUNK})


async def counting_upload(scope, receive, send):
    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        digest.update(message["body"])
        size += len(message["body"])
        if not message.get("more_body"):
            break
    body = b"%d %s" % (size, digest.hexdigest().encode())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def h2c_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


def test_prior_knowledge_scope(serve_each_parser):
    with serve_each_parser(scope_app) as server, h2c_client() as client:
        response = client.get(server.url("/a%20b?x=1"), headers={"x-test": "yes"})
        again = client.get(server.url("/second"))
    assert response.http_version == "HTTP/2" and again.http_version == "HTTP/2"
    scope = response.json()
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "http"
    assert scope["method"] == "GET"
    assert scope["path"] == "/a b" and scope["raw_path"] == "/a%20b" and scope["query_string"] == "x=1"
    assert scope["headers"][0] == ["host", f"{server.host}:{server.port}"]
    assert ["x-test", "yes"] in scope["headers"]
    assert not any(name.startswith(":") for name, _ in scope["headers"])
    assert set(scope["extensions"]) == {
        "http.response.trailers",
        "http.response.early_hint",
        "http.response.pathsend",
        "http.response.zerocopysend",
    }


def test_cookie_crumbs_reach_the_app_as_one_field(serve):
    """RFC 9113 8.2.3: a client may split Cookie into several fields (browsers do); the app sees them joined."""
    with serve(scope_app) as server:
        client = H2Client(server.host, server.port, validate=False)
        crumbs = [(b"cookie", b"a=1"), (b"x-other", b"o"), (b"cookie", b"b=2"), (b"cookie", b"c=3")]
        _, body = client.response(client.request("/", headers=crumbs))
        client.close()
    headers = json.loads(body)["headers"]
    assert [value for name, value in headers if name == "cookie"] == ["a=1; b=2; c=3"]
    assert ["x-other", "o"] in headers


def test_preface_in_pieces_is_still_http2(serve_each_parser):
    with serve_each_parser(hello) as server:
        client = H2Client(server.host, server.port)
        # h2's client sent the preface with its SETTINGS in one write: send a second
        # connection's preface a byte at a time instead.
        raw = server.connect()
        for byte in PREFACE:
            raw.sendall(bytes([byte]))
        raw.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame
        first = raw.recv(9)
        raw.close()
        stream = client.request("/")
        headers, body = client.response(stream)
        client.close()
    assert first[3] == 0x4  # the server's SETTINGS: it speaks HTTP/2 on that connection
    assert headers[b":status"] == b"200" and body == b"hello"


def test_http11_still_served_beside_http2(serve_each_parser):
    with serve_each_parser(hello) as server, httpx.Client() as client:
        response = client.get(server.url())
    assert response.http_version == "HTTP/1.1" and response.text == "hello"


def test_version_names_the_engine():
    built = (COMPILED_ENGINE or H2Engine).name
    layer = "python" if compiled_http2 is None else "cython"
    assert f"http2: {layer}/{built}," in version_line(http2=True) and "http2: off," in version_line(http2=False)


def test_h2_engine_can_be_chosen():
    """--h2-engine h2 serves on h2 even where libnghttp2 was built; nghttp2 where it was not is a config error."""
    with run_server(hello, http2=True, h2_engine="h2") as server, h2c_client() as client:
        served = client.get(server.url()).text
        engines = {type(connection.engine) for connection in server.state.connections}
    assert served == "hello" and engines == {H2Engine}
    assert "http2: " in version_line(http2=True, h2_engine="h2") and "/h2," in version_line(http2=True, h2_engine="h2")
    if COMPILED_ENGINE is None:
        with pytest.raises(ConfigError, match="no libnghttp2"):
            Config(hello, http2=True, h2_engine="nghttp2")


def test_connections_are_served_by_the_stream_layer_of_the_build(serve):
    """The compiled stream layer wherever HTTP/1.1 is compiled (so both are asserted in use by .ci/run)."""
    with serve(hello) as server, h2c_client() as client:
        client.get(server.url())
        protocols = {type(connection).__module__ for connection in server.state.connections}
    expected = "fastserve.protocols.http2" if compiled_http2 is None else "fastserve._speedups.http2"
    assert protocols == {expected}
    assert (compiled_http2 is None) == (IMPLEMENTATION == "python")


def test_no_http2_refuses_the_preface(serve_each_parser):
    with serve_each_parser(hello, http2=False) as server:
        sock = server.connect()
        sock.sendall(PREFACE)
        reply = recv_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 ")


def test_alpn_h2_over_tls(serve_each_parser, ca, server_files):
    tls = {"ssl_certfile": server_files["certfile"], "ssl_keyfile": server_files["keyfile"]}
    with serve_each_parser(scope_app, **tls) as server:
        url = f"https://127.0.0.1:{server.port}/"
        with httpx.Client(http2=True, verify=client_context(ca), timeout=10) as client:
            response = client.get(url)
        with httpx.Client(http2=False, verify=client_context(ca), timeout=10) as client:
            plain = client.get(url)
    assert response.http_version == "HTTP/2"
    scope = response.json()
    assert scope["scheme"] == "https" and scope["http_version"] == "2"
    assert scope["extensions"]["tls"]["tls_version"] in (0x0303, 0x0304)
    assert plain.http_version == "HTTP/1.1"


def test_concurrent_streams_run_at_once(serve):
    count = 8
    arrived = []
    everyone = {}

    async def barrier(scope, receive, send):
        # Every request waits until all have arrived: served one at a time, none would finish.
        if "event" not in everyone:
            everyone["event"] = asyncio.Event()
        arrived.append(scope["path"])
        if len(arrived) == count:
            everyone["event"].set()
        await everyone["event"].wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def fetch_all(url):
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            return await asyncio.gather(*(client.get(f"{url}{n}") for n in range(count)))

    with serve(barrier) as server:
        responses = asyncio.run(fetch_all(server.url("/")))
    assert [response.text for response in responses] == [f"/{n}" for n in range(count)]
    assert {response.http_version for response in responses} == {"HTTP/2"}


def test_streamed_upload_beyond_the_window(serve):
    body = bytes(range(256)) * 4096 * 3  # 3 MiB: many stream windows, and more than the connection's
    with serve(counting_upload) as server, h2c_client() as client:
        response = client.post(server.url(), content=iter([body[i : i + 50_000] for i in range(0, len(body), 50_000)]))
    assert response.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_echo_keeps_the_body_whole(serve):
    with serve(echo) as server, h2c_client() as client:
        response = client.post(server.url("/e"), content=b"x" * 100_000)
    assert response.content == b"x" * 100_000 and response.headers["x-path"] == "/e"


def test_64_mib_download_through_a_small_client_window(serve):
    with serve(download) as server:
        client = H2Client(server.host, server.port, window=65535)
        stream = client.request("/")
        size = 0
        while not client.ended(stream):
            for event in client.receive():
                if isinstance(event, h2.events.DataReceived):
                    size += len(event.data)
        client.close()
    assert size == len(CHUNK) * DOWNLOAD_CHUNKS
    assert not client.of(h2.events.StreamReset)


def test_trailers_and_early_hints(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]})
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False})

    with serve(app) as server:
        client = H2Client(server.host, server.port)
        stream = client.request("/")
        headers, body = client.response(stream)
        client.close()
    hints = client.of(h2.events.InformationalResponseReceived, stream)
    assert hints and dict(hints[0].headers)[b":status"] == b"103"
    assert dict(hints[0].headers)[b"link"] == b"</style.css>; rel=preload; as=style"
    assert headers[b":status"] == b"200" and body == b"body"
    trailers = client.of(h2.events.TrailersReceived, stream)
    assert trailers and dict(trailers[0].headers) == {b"x-checksum": b"abc"}


def test_client_reset_mid_response_disconnects_only_that_stream(serve):
    seen = []
    streaming = threading.Event()

    async def endless(scope, receive, send):
        if scope["path"] != "/endless":
            await hello(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        streaming.set()
        assert (await receive())["type"] == "http.request"  # (the empty body of a GET)
        seen.append(await receive())
        try:
            await send({"type": "http.response.body", "body": b"more", "more_body": True})
        except OSError as exc:
            seen.append(exc)

    with serve(endless) as server:
        client = H2Client(server.host, server.port)
        stream = client.request("/endless")
        client.until(lambda c: c.of(h2.events.DataReceived, stream))
        assert streaming.wait(5)
        client.conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        wait_for(lambda: len(seen) == 2)
        other = client.request("/other")
        headers, body = client.response(other)
        client.close()
    assert seen[0] == {"type": "http.disconnect"}
    assert isinstance(seen[1], OSError)
    assert headers[b":status"] == b"200" and body == b"hello"


class Slow:
    """An app that answers "finished" once ``release`` is set; ``entered`` says it has begun."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    async def __call__(self, scope, receive, send):
        self.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    def shutdown_during_a_request(self, server) -> tuple[H2Client, int, threading.Thread]:
        """A request in flight, then the server's graceful shutdown begun: until its GOAWAY has come."""
        client = H2Client(server.host, server.port)
        stream = client.request("/")
        assert self.entered.wait(5)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        client.until(lambda c: c.of(h2.events.ConnectionTerminated))
        return client, stream, stopper


def test_limit_concurrency_answers_503_on_a_stream(serve):
    """Admission is the same on every protocol (cycle.AppCycle): at --limit-concurrency a stream gets 503."""
    slow = Slow()
    with serve(slow, limit_concurrency=1) as server:
        busy = H2Client(server.host, server.port)
        first = busy.request("/")
        assert slow.entered.wait(5)
        with h2c_client() as other:
            assert other.get(server.url("/")).status_code == 503
        slow.release.set()
        assert busy.response(first)[1] == b"finished"
        busy.close()
        with h2c_client() as other:
            assert other.get(server.url("/")).status_code == 200


def test_access_line_names_the_client_a_trusted_proxy_gives(serve, caplog):
    caplog.set_level(logging.INFO, logger="fastserve.access")
    with serve(hello, forwarded_allow_ips="127.0.0.1") as server, h2c_client() as client:
        assert client.get(server.url("/p"), headers={"X-Forwarded-For": "203.0.113.5"}).text == "hello"
    lines = [record.getMessage() for record in caplog.records if record.name == "fastserve.access"]
    assert lines == ['203.0.113.5:0 - "GET /p HTTP/2" 200'], lines


def test_a_disconnect_message_the_app_changes_is_not_the_next_ones(serve):
    """Every receive() after the end gets a fresh http.disconnect: one app's change never reaches another."""
    seen = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        seen.append(dict(message))
        message["type"] = "changed by the app"
        message["extra"] = True

    with serve(app) as server, h2c_client() as client:
        for count in (1, 2):
            assert client.get(server.url("/")).text == "ok"
            wait_for(lambda count=count: len(seen) == count)
    assert seen == [{"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_graceful_shutdown_sends_goaway_and_finishes_streams(serve):
    slow = Slow()
    with serve(slow) as server:
        client, stream, stopper = slow.shutdown_during_a_request(server)
        goaway = client.of(h2.events.ConnectionTerminated)[0]
        slow.release.set()
        frames = client.frames_until_closed()  # (the server closes once the stream is done)
        stopper.join(10)
    assert goaway.error_code == h2.errors.ErrorCodes.NO_ERROR and goaway.last_stream_id == stream
    headers = [frame for frame in frames if isinstance(frame, hyperframe.frame.HeadersFrame)]
    data = [frame for frame in frames if isinstance(frame, hyperframe.frame.DataFrame)]
    assert headers[0].stream_id == stream and headers[0].decoded[b":status"] == b"200"
    assert b"".join(frame.data for frame in data) == b"finished" and "END_STREAM" in data[-1].flags


def test_connection_specific_request_header_is_a_protocol_error(serve, engine):
    """A malformed request (RFC 9113 8.1.1, 8.2.2) is a PROTOCOL_ERROR: libnghttp2 resets the stream (a stream
    error, and the connection serves on), h2 ends the connection with GOAWAY (RFC 9113 5.4.1 allows it)."""
    with serve(hello) as server:
        client = H2Client(server.host, server.port, validate=False)
        client.request("/", headers=[(b"connection", b"keep-alive")])
        client.until(lambda c: c.of(h2.events.ConnectionTerminated) or c.of(h2.events.StreamReset) or c.closed)
        if engine == "nghttp2":
            (reset,) = client.of(h2.events.StreamReset)
            assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR and reset.stream_id == 1
            assert not client.of(h2.events.ConnectionTerminated)
            stream = client.request("/")  # the same connection goes on
            headers, body = client.response(stream)
            assert (headers[b":status"], body) == (b"200", b"hello")
        else:
            assert not client.of(h2.events.StreamReset)
            (terminated,) = client.of(h2.events.ConnectionTerminated)
            assert terminated.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        client.close()
        with h2c_client() as fresh:
            assert fresh.get(server.url()).text == "hello"  # the server serves others


@pytest.mark.tracebacks("Exception in ASGI application")
def test_app_error_before_the_response_is_a_500(serve):
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    with serve(broken) as server, h2c_client() as client:
        response = client.get(server.url())
        again = client.get(server.url())
    assert response.status_code == 500 and again.status_code == 500


def test_head_and_204_have_no_body(serve):
    async def app(scope, receive, send):
        status = 204 if scope["path"] == "/empty" else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"" if status == 204 else b"hello"})

    with serve(app) as server, h2c_client() as client:
        head = client.head(server.url())
        empty = client.get(server.url("/empty"))
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "5"
    assert empty.status_code == 204 and empty.content == b""


def test_connection_headers_from_the_app_are_dropped(serve):
    async def app(scope, receive, send):
        headers = [(b"connection", b"close"), (b"transfer-encoding", b"chunked"), (b"x-kept", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app) as server:
        client = H2Client(server.host, server.port)
        headers, body = client.response(client.request("/"))
        client.close()
    assert body == b"ok" and headers[b"x-kept"] == b"1"
    assert b"connection" not in headers and b"transfer-encoding" not in headers


# Floods ---------------------------------------------------------------------


def test_rapid_reset_buys_no_concurrency_and_ends_the_connection(serve):
    """CVE-2023-44487: streams opened and reset at once, their apps still running."""

    async def stubborn(scope, receive, send):
        if scope["path"] == "/ok":
            await hello(scope, receive, send)
            return
        await asyncio.sleep(30)  # ignores the reset: still running, it holds its place

    with serve(stubborn, timeout_graceful_shutdown=0.5) as server:
        attacker = H2Client(server.host, server.port)
        try:
            for _ in range(1200):
                stream = attacker.request("/")
                attacker.conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
                attacker.flush()
        except OSError:
            pass  # the server has closed its side: the GOAWAY is on its way
        attacker.until(lambda c: c.of(h2.events.ConnectionTerminated))
        running = server.state.in_flight
        with h2c_client() as other:
            served = other.get(server.url("/ok")).text
        attacker.close()
    # libnghttp2 counts the client's resets itself and says INTERNAL_ERROR; on h2
    # the streams past the cap, refused, use up the server-reset budget first.
    goaway = attacker.of(h2.events.ConnectionTerminated)[0]
    assert goaway.error_code in (h2.errors.ErrorCodes.INTERNAL_ERROR, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
    assert running <= 100  # --h2-max-concurrent-streams: the resets bought no more
    assert served == "hello"


PING = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # (empty: it still asks for an ACK)


@pytest.mark.parametrize("frame", [PING, SETTINGS], ids=["ping", "settings"])
def test_control_frame_flood_from_a_client_that_does_not_read_is_bounded(serve, frame):
    """CVE-2019-9512/9515: each PING or SETTINGS asks for an answer; a client that never reads them is not read."""
    with serve(hello) as server:
        attacker = H2Client(server.host, server.port)
        attacker.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        attacker.sock.settimeout(1)
        sent = 0
        flood = frame * 4096
        try:
            while sent < 64 * 1024 * 1024:
                attacker.sock.sendall(flood)
                sent += len(flood)
        except TimeoutError:
            pass  # the server stopped reading: the kernel buffers filled up
        # Either the server stops reading from the attacker (once what it has
        # read is answered), or (libnghttp2 counts the answers it queues) it
        # ends the connection and drains it.
        wait_for(
            lambda: all(connection.read_paused or connection.closed for connection in server.state.connections), 30
        )
        connections = list(server.state.connections)
        buffered = max((connection.transport.get_write_buffer_size() for connection in connections), default=0)
        with h2c_client() as other:
            served = other.get(server.url()).text
        attacker.close()
    assert buffered < 1024 * 1024
    assert served == "hello"


def test_zero_window_slow_read_is_reset_after_the_stall_timeout(serve):
    """CVE-2019-9511/9517: a client that opens no window for the response holds it only for --h2-stall-timeout."""
    outcome = []

    async def big(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"x" * 100_000})
        except OSError as exc:
            outcome.append(exc)

    with serve(big, h2_stall_timeout=1.0) as server:
        client = H2Client(server.host, server.port, window=0)
        stream = client.request("/")
        client.until(lambda c: c.of(h2.events.StreamReset, stream), timeout=10)
        wait_for(lambda: outcome)
        with h2c_client() as other:
            served = other.get(server.url()).status_code
        client.close()
    assert client.of(h2.events.StreamReset, stream)[0].error_code == h2.errors.ErrorCodes.CANCEL
    assert isinstance(outcome[0], OSError)
    assert served == 200


def test_continuation_flood_is_a_connection_error(serve):
    """A header block that never ends (CONTINUATION without END_HEADERS) is refused, not accumulated."""
    with serve(hello) as server:
        client = H2Client(server.host, server.port)
        block = client.conn.encoder.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")])
        headers = hyperframe.frame.HeadersFrame(1)
        headers.data = block
        frames = headers.serialize()
        continuation = hyperframe.frame.ContinuationFrame(1)
        continuation.data = b"\x40\x01a\x01b" * 2000  # literal fields, 10 KB a frame
        frames += continuation.serialize() * 200
        try:
            client.sock.sendall(frames)
        except OSError:
            pass  # the server may close before it has taken all of it
        client.until(lambda c: c.of(h2.events.ConnectionTerminated) or c.closed)
        with h2c_client() as other:
            served = other.get(server.url()).text
        client.close()
    # GOAWAY ENHANCE_YOUR_CALM, before the block is decoded (the README's flood table), on both engines.
    (terminated,) = client.of(h2.events.ConnectionTerminated)
    assert terminated.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert served == "hello"


def test_hpack_bomb_is_measured_decoded(serve):
    """A small header block that decodes to a huge header list (one big entry referenced again and again)."""
    with serve(hello) as server:
        client = H2Client(server.host, server.port)
        # A 4000-byte value added to the dynamic table (literal with incremental
        # indexing, new name "x"), then referenced by its index (62) 3000 times:
        # about 3 KB on the wire, 12 MB decoded.
        value = b"v" * 4000
        block = client.conn.encoder.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")])
        block += b"\x40\x01x" + b"\x7f" + bytes([0x80 | ((len(value) - 127) & 0x7F), (len(value) - 127) >> 7]) + value
        block += b"\xbe" * 3000
        headers = hyperframe.frame.HeadersFrame(1)
        headers.data = block
        headers.flags.add("END_HEADERS")
        headers.flags.add("END_STREAM")
        client.sock.sendall(headers.serialize())
        client.until(lambda c: c.of(h2.events.ConnectionTerminated) or c.closed)
        with h2c_client() as other:
            served = other.get(server.url()).text
        client.close()
    (terminated,) = client.of(h2.events.ConnectionTerminated)
    assert terminated.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM  # (on both engines)
    assert served == "hello"


def test_empty_data_frame_flood_ends_the_connection(serve):
    """CVE-2019-9518: DATA frames with nothing in them, on a stream kept open."""

    async def reader(scope, receive, send):
        while (await receive())["type"] == "http.request":
            pass

    with serve(reader) as server:
        client = H2Client(server.host, server.port)
        stream = client.request("/", method="POST", end=False)
        empty = hyperframe.frame.DataFrame(stream)
        try:
            client.sock.sendall(empty.serialize() * 5000)
        except OSError:
            pass
        client.until(lambda c: c.of(h2.events.ConnectionTerminated) or c.closed)
        client.close()
    assert client.of(h2.events.ConnectionTerminated)[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_streams_the_server_must_refuse_are_counted(serve):
    """MadeYouReset (CVE-2025-8671): a client that makes the server reset stream after stream loses the connection.

    Here the resets are the server's REFUSED_STREAM for streams beyond the cap
    of running apps (whose own streams the client reset, so h2 counts them closed).
    """

    async def stubborn(scope, receive, send):
        await asyncio.sleep(30)

    with serve(stubborn, timeout_graceful_shutdown=0.5, h2_max_concurrent_streams=10) as server:
        client = H2Client(server.host, server.port)
        for _ in range(10):
            client.conn.reset_stream(client.request("/"), h2.errors.ErrorCodes.CANCEL)
        client.flush()
        wait_for(lambda: server.state.in_flight == 10)
        client.until(lambda c: c.of(h2.events.RemoteSettingsChanged))  # (its ACK of the limit has gone)
        # (Fields never indexed: the same block can be sent again and again.)
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/")]
        block = client.conn.encoder.encode([hpack.NeverIndexedHeaderTuple(*field) for field in fields])
        frames = b""
        for stream_id in range(21, 21 + 2 * 1100, 2):
            headers = hyperframe.frame.HeadersFrame(stream_id)
            headers.data = block
            headers.flags.add("END_HEADERS")
            headers.flags.add("END_STREAM")
            frames += headers.serialize()
        try:
            client.sock.sendall(frames)
        except OSError:
            pass
        client.until(lambda c: c.of(h2.events.ConnectionTerminated) or c.closed)
        running = server.state.in_flight
        client.close()
    # h2, fed a frame at a time, sees each refusal at once: after 1000 the budget
    # ends the connection (ENHANCE_YOUR_CALM). libnghttp2 takes the read whole
    # and counts the new streams open until they are refused: one too many is a
    # connection error (PROTOCOL_ERROR). Either way no more apps ran.
    assert client.of(h2.events.ConnectionTerminated)[0].error_code in (
        h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
        h2.errors.ErrorCodes.PROTOCOL_ERROR,
    )
    assert running == 10


def test_streams_beyond_the_limit_end_the_connection(serve):
    """A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS once it has acknowledged it: PROTOCOL_ERROR.

    (RFC 9113 5.1.2 allows REFUSED_STREAM or PROTOCOL_ERROR; libnghttp2 ends
    the connection, and the h2 engine does as it does.)
    """
    release = threading.Event()

    async def held(scope, receive, send):
        while not release.is_set():
            await asyncio.sleep(0.01)
        await hello(scope, receive, send)

    with serve(held, h2_max_concurrent_streams=5) as server:
        client = H2Client(server.host, server.port)
        client.until(lambda c: c.conn.remote_settings.max_concurrent_streams == 5)
        client.until(lambda c: c.of(h2.events.SettingsAcknowledged))  # (and it has acknowledged ours)
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/")]
        block = client.conn.encoder.encode([hpack.NeverIndexedHeaderTuple(*field) for field in fields])
        frames = b""
        for stream_id in range(1, 17, 2):  # 8 streams, 5 allowed
            headers = hyperframe.frame.HeadersFrame(stream_id)
            headers.data = block
            headers.flags.add("END_HEADERS")
            headers.flags.add("END_STREAM")
            frames += headers.serialize()
        client.sock.sendall(frames)
        goaway = client.frames_until(lambda frame: isinstance(frame, hyperframe.frame.GoAwayFrame), count=1)
        running = server.state.in_flight
        release.set()
        with h2c_client() as other:
            served = other.get(server.url()).text
        client.close()
    assert goaway[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert running <= 5
    assert served == "hello"


def test_continuation_flood_of_big_frames_is_capped_in_bytes(serve):
    """Few, large CONTINUATION frames (the frame cap alone would let 64 of them pile up)."""
    with serve(hello, h2_max_frame_size=1024 * 1024) as server:
        client = H2Client(server.host, server.port)
        client.until(lambda c: c.conn.remote_settings.max_frame_size == 1024 * 1024)
        headers = hyperframe.frame.HeadersFrame(1)
        headers.data = client.conn.encoder.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")])
        continuation = hyperframe.frame.ContinuationFrame(1)
        continuation.data = b"\x40\x01a\x01b" * 200_000  # 1 MB of literal fields a frame
        try:
            client.sock.sendall(headers.serialize() + continuation.serialize() * 3)
        except OSError:
            pass
        client.until(lambda c: c.of(h2.events.ConnectionTerminated) or c.closed)
        client.close()
    assert client.of(h2.events.ConnectionTerminated)[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


# Upgrade: h2c ------------------------------------------------------------------


def h2c_upgrade_request(settings: bytes, path: str = "/up", extra: bytes = b"") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: example.test\r\n".encode()
        + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: "
        + settings
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def test_upgrade_h2c_serves_the_request_as_stream_1(serve_each_parser):
    with serve_each_parser(scope_app, h2c_upgrade=True) as server:
        client = H2Client.__new__(H2Client)  # (set up by hand: the connection starts as HTTP/1.1)
        client.sock = server.connect()
        client.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        client.events, client.closed, client.raw_pending = [], False, b""
        settings = client.conn.initiate_upgrade_connection()
        client.sock.sendall(h2c_upgrade_request(settings, "/up?q=1"))
        switching, _, early = recv_until(client.sock, b"\r\n\r\n").partition(b"\r\n\r\n")
        client.flush()  # the client's preface and SETTINGS, which h2 queued for after the 101
        client.events += client.conn.receive_data(early)
        headers, body = client.response(1)
        second = client.request("/second")
        _, second_body = client.response(second)
        client.close()
    assert switching.startswith(b"HTTP/1.1 101 ") and b"upgrade: h2c" in switching.lower()
    assert headers[b":status"] == b"200"
    scope = json.loads(body)
    assert scope["http_version"] == "2" and scope["path"] == "/up" and scope["query_string"] == "q=1"
    assert json.loads(second_body)["path"] == "/second"


def test_upgrade_h2c_is_off_unless_enabled(serve_each_parser):
    with serve_each_parser(hello, http2=True) as server, server.connect() as sock:
        sock.sendall(h2c_upgrade_request(b"AAMAAABkAAQAAP__"))
        reply = recv_all(sock)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"hello")


@pytest.mark.parametrize(
    "settings, extra",
    [(b"not base64!", b""), (b"AAMAAABk", b"HTTP2-Settings: AAMAAABk\r\n"), (b"AAMAAA", b"")],
    ids=["not-base64url", "twice", "not-whole-settings"],
)
def test_upgrade_h2c_with_bad_settings_is_refused(serve_each_parser, settings, extra):
    with serve_each_parser(hello, h2c_upgrade=True) as server, server.connect() as sock:
        sock.sendall(h2c_upgrade_request(settings, extra=extra))
        reply = recv_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 ")


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed (apt-get install nghttp2-client)")
def test_h2load_over_h2c(serve, tmp_path):
    upload = tmp_path / "upload"
    upload.write_bytes(b"u" * 100_000)
    with serve(counting_upload) as server:
        result = subprocess.run(
            ["h2load", "-n", "400", "-c", "4", "-m", "16", "-d", str(upload), server.url()],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert "400 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout
    assert "Application protocol: h2c" in result.stdout


def test_client_goaway_disconnects_the_streams_in_flight(serve, caplog):
    heard = []

    async def waiting(scope, receive, send):
        await receive()  # (the empty body of a GET)
        heard.append(await receive())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:
            heard.append(exc)

    with serve(waiting) as server:
        client = H2Client(server.host, server.port)
        client.request("/")
        wait_for(lambda: server.state.in_flight == 1)
        client.conn.close_connection()
        client.flush()
        wait_for(lambda: len(heard) == 2)
        wait_for(lambda: not server.state.connections)
        client.close()
    assert heard[0] == {"type": "http.disconnect"} and isinstance(heard[1], OSError)
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_pathsend_and_zerocopysend(serve, tmp_path):
    path = tmp_path / "file"
    content = bytes(range(256)) * 8192  # 2 MiB: many windows
    path.write_bytes(content)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/path":
            await send({"type": "http.response.pathsend", "path": str(path)})
            return
        with open(path, "rb") as file:
            message = {"type": "http.response.zerocopysend", "file": file, "offset": 10, "count": 1000}
            await send({**message, "more_body": True})
            await send({"type": "http.response.body", "body": b"|", "more_body": True})
            file.seek(5)
            await send({"type": "http.response.zerocopysend", "file": file, "count": 3})  # from the position

    with serve(app) as server, h2c_client() as client:
        whole = client.get(server.url("/path"))
        region = client.get(server.url("/region"))
    assert whole.content == content
    assert region.content == content[10:1010] + b"|" + content[5:8]


# Keep-alive PING ------------------------------------------------------------------


def test_keep_alive_ping_answered_keeps_a_long_response_going(serve):
    """--h2-ping-interval: a silent client is PINGed; answering, it keeps its connection past --h2-ping-timeout."""
    release = threading.Event()

    async def long_response(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first ", "more_body": True})
        while not release.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"last"})

    with serve(long_response, h2_ping_interval=0.5, h2_ping_timeout=1.0) as server:
        client = H2Client(server.host, server.port)  # (h2 answers each PING it receives)
        stream = client.request("/")
        # A second PING comes only after the first was answered, a sweep or more later.
        client.until(lambda c: len(c.of(h2.events.PingReceived)) >= 2, timeout=15)
        release.set()
        _, body = client.response(stream)
        client.close()
    assert body == b"first last"


def test_keep_alive_ping_unanswered_closes_the_connection(serve):
    heard = []

    async def waiting(scope, receive, send):
        await receive()  # (the empty body of a GET)
        heard.append(await receive())

    with serve(waiting, h2_ping_interval=0.5, h2_ping_timeout=1.0) as server:
        client = H2Client(server.host, server.port)
        client.request("/")
        # Read raw (h2 would answer the PING), and answer nothing.
        pings = client.frames_until(lambda frame: isinstance(frame, hyperframe.frame.PingFrame), 1, timeout=15)
        client.frames_until_closed(timeout=15)
        wait_for(lambda: heard)
        client.close()
    assert pings[0].opaque_data and "ACK" not in pings[0].flags
    assert heard == [{"type": "http.disconnect"}]


def test_keep_alive_ping_is_off_by_default():
    assert HTTP2Settings().ping_interval is None


# Garbage after a valid preface ------------------------------------------------------


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


CODES = h2.errors.ErrorCodes


@pytest.mark.parametrize(
    ("garbage", "error_code"),
    [
        (b"\xff" * 64, CODES.FRAME_SIZE_ERROR),  # a frame header announcing 16 MiB (RFC 9113 4.2)
        (raw_frame(0x0, 0x1, 0, b"data"), CODES.PROTOCOL_ERROR),  # DATA on the connection's stream (6.1)
        (raw_frame(0x1, 0x5, 2, b"\x82"), CODES.PROTOCOL_ERROR),  # HEADERS on a stream id only the server may use
        (raw_frame(0x8, 0x0, 0, b"\x00\x00\x00\x00"), CODES.PROTOCOL_ERROR),  # WINDOW_UPDATE of nothing (6.9)
        (raw_frame(0x4, 0x0, 0, b"\x00\x03\x00"), CODES.FRAME_SIZE_ERROR),  # SETTINGS not a multiple of 6 bytes
        (raw_frame(0x1, 0x5, 1, b"\xff\xff\xff\xff\xff"), CODES.COMPRESSION_ERROR),  # HPACK that does not decode (4.3)
    ],
    ids=["oversized", "data-on-0", "even-stream", "zero-window-update", "short-settings", "bad-hpack"],
)
def test_garbage_frames_after_the_preface_end_the_connection_with_goaway(serve, garbage, error_code):
    """Each connection error with the code RFC 9113 gives it, the same on both engines."""
    with serve(hello) as server:
        client = H2Client(server.host, server.port)
        client.sock.sendall(garbage)
        frames = client.frames_until_closed()
        client.close()
        with h2c_client() as other:
            served = other.get(server.url()).text
    goaways = [frame for frame in frames if isinstance(frame, hyperframe.frame.GoAwayFrame)]
    assert [CODES(frame.error_code) for frame in goaways] == [error_code]
    assert served == "hello"


def test_headers_on_a_lower_stream_id_never_used_is_a_protocol_error(serve):
    """RFC 9113 5.1.1 (h2spec 5.1.1/2): stream 5 opened, then HEADERS on stream 3, which was never used.
    libnghttp2 alone ignores the frame; both engines end the connection with GOAWAY PROTOCOL_ERROR (the
    keep-alive timeout is long, so an idle close cannot pass for it)."""
    with serve(hello, timeout_keep_alive=30) as server:
        client = H2Client(server.host, server.port)
        request = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"), (b":path", b"/")]
        for stream_id in (5, 3):
            frame = hyperframe.frame.HeadersFrame(stream_id, flags=["END_HEADERS", "END_STREAM"])
            frame.data = client.conn.encoder.encode(request)
            client.sock.sendall(frame.serialize())
        frames = client.frames_until_closed(timeout=10)
        client.close()
    goaways = [frame for frame in frames if isinstance(frame, hyperframe.frame.GoAwayFrame)]
    assert [CODES(frame.error_code) for frame in goaways] == [CODES.PROTOCOL_ERROR]
    assert not [frame for frame in frames if frame.stream_id == 3]


@pytest.mark.parametrize("over_tls", [False, True], ids=["h2c", "tls"])
def test_client_end_of_input_closes_the_connection_quietly(serve, ca, server_files, over_tls, caplog):
    """An end of input without GOAWAY is the client gone: the connection closes, and nothing is logged as an error."""
    tls = {"ssl_certfile": server_files["certfile"], "ssl_keyfile": server_files["keyfile"]} if over_tls else {}
    with serve(hello, **tls) as server:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        if over_tls:
            context = client_context(ca)
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        client = H2Client(server.host, server.port, sock=sock)
        _, body = client.response(client.request("/"))
        if over_tls:
            try:
                sock.unwrap()  # (TLS close_notify, as h2load ends a connection)
            except OSError:
                pass
        else:
            sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: not server.state.connections)
        client.close()
    assert body == b"hello"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


# What the README promises ---------------------------------------------------------------


def test_host_disagreeing_with_authority_is_refused_and_scheme_is_the_connections(serve, engine):
    """A `host` field that disagrees with `:authority` is malformed (RFC 9113 8.3.1): 400 on libnghttp2 (the stream
    layer's check), GOAWAY PROTOCOL_ERROR on h2 (h2's own). The scope's scheme is never the client's `:scheme`."""
    with serve(scope_app) as server:
        client = H2Client(server.host, server.port, validate=False)
        fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"), (b":path", b"/")]
        agreeing = client.conn.get_next_available_stream_id()
        client.conn.send_headers(agreeing, [*fields, (b"host", b"a.test")], end_stream=True)
        client.flush()
        headers, body = client.response(agreeing)
        assert headers[b":status"] == b"200"
        scope = json.loads(body)
        assert scope["scheme"] == "http"  # the connection's (h2c), not the :scheme the client sent
        assert scope["headers"][0] == ["host", "a.test"]
        disagreeing = client.conn.get_next_available_stream_id()
        client.conn.send_headers(disagreeing, [*fields, (b"host", b"b.test")], end_stream=True)
        client.flush()
        if engine == "nghttp2":
            headers, _ = client.response(disagreeing)
            assert headers[b":status"] == b"400"
        else:
            client.until(lambda c: c.of(h2.events.ConnectionTerminated))
            (terminated,) = client.of(h2.events.ConnectionTerminated)
            assert terminated.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        client.close()


def test_window_bounds_what_an_app_that_does_not_read_holds(serve):
    """An app that does not read: the client can send --h2-initial-window-size bytes on its stream, no more."""
    started = threading.Event()
    release = threading.Event()

    async def not_reading(scope, receive, send):
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(not_reading, h2_initial_window_size=20000) as server:
        client = H2Client(server.host, server.port)
        stream = client.request("/", method="POST", body=None, end=False)
        assert started.wait(5)
        client.until(lambda c: c.conn.remote_settings.initial_window_size == 20000)
        window = client.conn.local_flow_control_window(stream)
        assert window == 20000  # what the server advertised for the stream
        for _ in range(window // 10000):
            client.conn.send_data(stream, b"x" * 10000)
        client.flush()
        server.sync(iterations=20)
        # No WINDOW_UPDATE for the stream: the app read nothing, so the client may send nothing more.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                client.receive(deadline - time.monotonic())
            except TimeoutError:
                break
        assert client.conn.local_flow_control_window(stream) == 0
        assert not client.of(h2.events.WindowUpdated, stream)
        release.set()
        headers, _ = client.response(stream)
        client.close()
    assert headers[b":status"] == b"200"


@pytest.mark.tracebacks("Exception in ASGI application")
def test_app_failing_mid_response_resets_the_stream(serve):
    """An app that fails after its response head left: RST_STREAM (INTERNAL_ERROR) for that stream; others go on."""

    async def breaks(scope, receive, send):
        if scope["path"] != "/breaks":
            await hello(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("app bug mid-response")

    with serve(breaks) as server:
        client = H2Client(server.host, server.port)
        stream = client.request("/breaks")
        client.until(lambda c: c.of(h2.events.StreamReset, stream))
        (reset,) = client.of(h2.events.StreamReset, stream)
        assert reset.error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
        assert not client.of(h2.events.StreamEnded, stream)  # (never a complete response: no END_STREAM)
        headers, body = client.response(client.request("/other"))
        client.close()
    assert (headers[b":status"], body) == (b"200", b"hello")


def test_streams_opened_after_goaway_are_not_served(serve, engine):
    """After the server's GOAWAY (graceful shutdown), a newer stream is not served: h2 refuses it (REFUSED_STREAM),
    libnghttp2 ignores it (RFC 9113 6.8 allows both: the GOAWAY's last stream id tells the client to retry it).
    The stream in flight finishes."""
    slow = Slow()
    with serve(slow) as server:
        client, first, stopper = slow.shutdown_during_a_request(server)
        # A client that opens a stream anyway (raw: h2's client sends nothing after a GOAWAY).
        late = hyperframe.frame.HeadersFrame(first + 2, flags=["END_HEADERS", "END_STREAM"])
        late.data = client.conn.encoder.encode(
            [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"), (b":path", b"/late")]
        )
        client.sock.sendall(late.serialize())
        wait_for(lambda: all_read(server))  # (the server has read the late stream's HEADERS)
        server.sync(iterations=5)
        slow.release.set()
        frames = client.frames_until_closed()
        stopper.join(10)
        client.close()
    for_late = [frame for frame in frames if frame.stream_id == first + 2]
    if engine == "h2":
        assert [(type(frame), frame.error_code) for frame in for_late] == [
            (hyperframe.frame.RstStreamFrame, h2.errors.ErrorCodes.REFUSED_STREAM)
        ]
    else:
        assert for_late == []
    data = [frame for frame in frames if isinstance(frame, hyperframe.frame.DataFrame)]
    assert b"".join(frame.data for frame in data) == b"finished" and "END_STREAM" in data[-1].flags


def test_idle_connection_is_closed_after_keep_alive_with_goaway(serve):
    with serve(hello, timeout_keep_alive=1) as server:
        client = H2Client(server.host, server.port)
        headers, _ = client.response(client.request("/"))
        started = time.monotonic()
        frames = client.frames_until_closed()
        waited = time.monotonic() - started
        client.close()
    goaways = [frame for frame in frames if isinstance(frame, hyperframe.frame.GoAwayFrame)]
    assert headers[b":status"] == b"200"
    assert [frame.error_code for frame in goaways] == [h2.errors.ErrorCodes.NO_ERROR]
    assert 0.5 <= waited <= 3.5  # (deadlines are swept once a second)


def test_response_before_the_request_body_reaches_the_client_then_the_stream_is_reset(serve):
    """An app that answers without reading the upload (a 413, say): the client gets the whole response, then
    RST_STREAM NO_ERROR to stop sending (RFC 9113 8.1). (libnghttp2 once sent the reset first and lost the answer.)"""

    async def refuses(scope, receive, send):
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too large"})

    with serve(refuses) as server:
        client = H2Client(server.host, server.port)
        stream = client.request("/upload", method="POST", end=False)
        client.conn.send_data(stream, b"x" * 1000)
        client.flush()
        client.until(lambda c: c.of(h2.events.StreamReset, stream))
        headers, body = client.response(stream)
        client.close()
    kinds = [type(event) for event in client.events if getattr(event, "stream_id", None) == stream]
    assert (headers[b":status"], body) == (b"413", b"too large")
    assert kinds[-2:] == [h2.events.StreamEnded, h2.events.StreamReset]
    assert client.of(h2.events.StreamReset, stream)[0].error_code == h2.errors.ErrorCodes.NO_ERROR

"""ASGI response extensions on HTTP/1.1: trailers, early hints, pathsend and zerocopysend."""

from __future__ import annotations

import hashlib
import os
import threading

import httpx
import pytest

from tests.conftest import client_context, read_response, recv_all, recv_until, wait_for

TRAILER_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n"
PLAIN_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def trailers_app(trailers, body_parts=(b"hello ", b"world"), headers=()):
    async def app(scope, receive, send):
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": list(headers), "trailers": True})
        for index, part in enumerate(body_parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < len(body_parts) - 1})
        for index, group in enumerate(trailers):
            await send({"type": "http.response.trailers", "headers": group, "more_trailers": index < len(trailers) - 1})

    return app


def test_trailers_follow_the_chunked_body_when_the_client_asks(serve):
    app = trailers_app([[(b"x-checksum", b"abc")], [(b"server-timing", b"db;dur=3")]])
    with serve(app) as server, server.connect() as sock:
        sock.sendall(TRAILER_REQUEST)
        data = recv_until(sock, b"server-timing: db;dur=3\r\n\r\n")
        # The connection goes on after the trailers.
        sock.sendall(TRAILER_REQUEST)
        again = recv_until(sock, b"server-timing: db;dur=3\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert body == b"6\r\nhello \r\n5\r\nworld\r\n0\r\nx-checksum: abc\r\nserver-timing: db;dur=3\r\n\r\n"
    assert again.startswith(b"HTTP/1.1 200 OK")


def test_single_body_with_trailers_is_chunked_too(serve):
    with serve(trailers_app([[(b"x-checksum", b"abc")]], body_parts=(b"whole",))) as server, server.connect() as sock:
        sock.sendall(TRAILER_REQUEST)
        data = recv_until(sock, b"x-checksum: abc\r\n\r\n")
    assert data.endswith(b"\r\n\r\n5\r\nwhole\r\n0\r\nx-checksum: abc\r\n\r\n")


@pytest.mark.parametrize(
    "request_bytes",
    [PLAIN_REQUEST, b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nTE: deflate\r\n\r\n"],
    ids=["no TE", "HTTP/1.0", "other TE"],
)
def test_trailers_dropped_when_the_client_did_not_ask(serve, request_bytes):
    with serve(trailers_app([[(b"x-checksum", b"abc")]])) as server, server.connect() as sock:
        sock.sendall(request_bytes)
        status, headers, body = read_response(sock)
    assert (status, body) == (200, b"hello world")
    assert b"x-checksum" not in headers


def test_trailers_dropped_after_a_content_length_body(serve):
    app = trailers_app([[(b"x-checksum", b"abc")]], body_parts=(b"abc",), headers=[(b"content-length", b"3")])
    with serve(app) as server, server.connect() as sock:
        sock.sendall(TRAILER_REQUEST + TRAILER_REQUEST)
        first, second = read_response(sock), read_response(sock)
    assert first[0] == second[0] == 200 and first[2] == b"abc"
    assert b"transfer-encoding" not in first[1]


@pytest.mark.parametrize("name", [b"content-length", b"Transfer-Encoding", b"host", b"set-cookie", b"x bad"])
@pytest.mark.tracebacks("Exception in ASGI application")
def test_forbidden_trailer_cuts_the_response(serve, name, caplog):
    with serve(trailers_app([[(name, b"1")]])) as server, server.connect() as sock:
        sock.sendall(TRAILER_REQUEST)
        data = recv_all(sock)
    assert data.endswith(b"5\r\nworld\r\n")  # no last chunk: the client sees a broken response
    assert any("Exception in ASGI application" in record.getMessage() for record in caplog.records)


@pytest.mark.tracebacks("Exception in ASGI application")
def test_trailers_before_the_last_body_message_are_refused(serve, caplog):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.trailers", "headers": []})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(TRAILER_REQUEST)
        assert recv_all(sock).startswith(b"HTTP/1.1 500 ")
    assert "before the last 'http.response.body'" in caplog.text


def early_hint_app(after_start=False):
    async def app(scope, receive, send):
        hints = {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]}
        if not after_start:
            await send(hints)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if after_start:
            await send(hints)  # still before the head leaves: the 103 goes first
        await send({"type": "http.response.body", "body": b"page"})

    return app


@pytest.mark.parametrize("after_start", [False, True])
def test_early_hints_before_the_final_response(serve, after_start):
    with serve(early_hint_app(after_start)) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        data = recv_until(sock, b"page")
    hint, _, rest = data.partition(b"\r\n\r\n")
    assert hint == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style"
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\npage")


def test_no_early_hints_to_http10(serve):
    with serve(early_hint_app()) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"103" not in data


def test_early_hint_after_the_head_left_is_ignored(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.early_hint", "links": [b"</late.js>; rel=preload"]})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        status, headers, body = read_response(sock)
    assert (status, body) == (200, b"part")


@pytest.mark.tracebacks("Exception in ASGI application")
def test_early_hint_with_a_control_byte_is_refused(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.early_hint", "links": [b"</x>\r\nset-cookie: evil=1"]})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 500 ") and b"evil" not in data


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


def pathsend_app(path, headers=()):
    async def app(scope, receive, send):
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


def counting_sendfile(monkeypatch):
    calls = []
    real = os.sendfile

    def sendfile(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, "sendfile", sendfile)
    return calls


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_pathsend_uses_sendfile(serve, big_file, loop, monkeypatch):
    calls = counting_sendfile(monkeypatch)
    with serve(pathsend_app(big_file), loop=loop) as server, httpx.Client() as client:
        responses = [client.get(server.url("/")) for _ in range(2)]  # on one connection
    expected = big_file.read_bytes()
    for response in responses:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(expected))
        assert response.content == expected
    assert calls, "os.sendfile was not used"


def test_pathsend_over_tls_reads_the_file(serve, big_file, ca, server_files, monkeypatch):
    calls = counting_sendfile(monkeypatch)
    options = {"ssl_certfile": server_files["certfile"], "ssl_keyfile": server_files["keyfile"]}
    with serve(pathsend_app(big_file), **options) as server, httpx.Client(verify=client_context(ca)) as client:
        response = client.get(f"https://127.0.0.1:{server.port}/")
    assert response.content == big_file.read_bytes()
    assert not calls


def test_pathsend_to_a_slow_reader_holds_no_file_in_memory(serve, tmp_path):
    path = tmp_path / "large.bin"
    with open(path, "wb") as file:
        file.truncate(64 * 1024 * 1024)
    started = threading.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        await send({"type": "http.response.pathsend", "path": str(path)})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        assert started.wait(5)
        connection = next(iter(server.state.connections))
        # The client reads nothing yet: the socket fills, and the server waits
        # with (next to) nothing of the file in its own buffers.
        wait_for(lambda: connection.drain_waiter is not None)
        assert connection.transport.get_write_buffer_size() < 256 * 1024
        received = 0
        digest = hashlib.sha256()
        sock.settimeout(10)
        while received < 64 * 1024 * 1024:
            chunk = sock.recv(1 << 20)
            assert chunk
            if received == 0:
                head, _, chunk = chunk.partition(b"\r\n\r\n")
                assert b"content-length: 67108864" in head
            received += len(chunk)
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(bytes(64 * 1024 * 1024)).hexdigest()


def test_pathsend_head_request_sends_the_length_only(serve, big_file):
    with serve(pathsend_app(big_file)) as server, server.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: %d" % big_file.stat().st_size in head and body == b""


@pytest.mark.parametrize("path", ["relative/file.txt", "/no/such/file", None])
@pytest.mark.tracebacks("Exception in ASGI application")
def test_pathsend_bad_path_gives_500(serve, path):
    with serve(pathsend_app(path)) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        assert recv_all(sock).startswith(b"HTTP/1.1 500 ")


@pytest.mark.tracebacks("Exception in ASGI application")
def test_pathsend_of_a_directory_gives_500(serve, tmp_path):
    with serve(pathsend_app(tmp_path)) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        assert recv_all(sock).startswith(b"HTTP/1.1 500 ")


def test_zerocopysend_regions_mixed_with_body_messages(serve, big_file):
    async def app(scope, receive, send):
        assert "http.response.zerocopysend" in scope["extensions"]
        with open(big_file, "rb") as file:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"[", "more_body": True})
            await send(
                {"type": "http.response.zerocopysend", "file": file, "offset": 10, "count": 100, "more_body": True}
            )
            await send({"type": "http.response.body", "body": b"|", "more_body": True})
            file.seek(1000)
            # No offset: from the file's position, which then moves on as read() would move it.
            await send({"type": "http.response.zerocopysend", "file": file, "count": 50, "more_body": True})
            assert file.tell() == 1050
            # No count: to the end of the file.
            await send(
                {"type": "http.response.zerocopysend", "file": file, "offset": len(content) - 7, "more_body": True}
            )
            await send({"type": "http.response.body", "body": b"]"})

    content = big_file.read_bytes()
    with serve(app) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST + PLAIN_REQUEST)
        responses = [read_response(sock) for _ in range(2)]
    for status, headers, body in responses:
        assert status == 200 and headers[b"transfer-encoding"] == b"chunked"
        assert body == b"[" + content[10:110] + b"|" + content[1000:1050] + content[-7:] + b"]"


def test_zerocopysend_as_the_whole_body_gets_a_content_length(serve, big_file):
    async def app(scope, receive, send):
        with open(big_file, "rb") as file:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 5, "count": 4096})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST)
        status, headers, body = read_response(sock)
    assert headers[b"content-length"] == b"4096" and body == big_file.read_bytes()[5:4101]


def test_zerocopysend_past_the_end_of_the_file_cuts_the_response(serve, big_file, caplog):
    async def app(scope, receive, send):
        with open(big_file, "rb") as file:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": big_file.stat().st_size - 10})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(PLAIN_REQUEST + PLAIN_REQUEST)
        data = recv_all(sock)
    assert data.count(b"HTTP/1.1 200") == 1 and data.endswith(big_file.read_bytes()[-10:])
    assert "Response body shorter than its Content-Length" in caplog.text

"""HTTP/1.1 behaviour over real sockets, on both parser implementations."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import threading
import time

import httpx
import pytest

from fastserve.protocols.http1_cycle import MAX_HELD_STREAM
from tests.apps import echo, hello, scope_app, streaming
from tests.conftest import all_read, decode_chunked, read_response, recv_all, recv_until, run_server, wait_for


def test_get_with_default_headers(serve):
    with serve(hello) as server:
        response = httpx.get(server.url("/"))
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["server"] == "fastserve"
    assert response.headers["content-length"] == "5"
    assert response.headers["date"].endswith(" GMT")


def test_custom_and_disabled_default_headers(serve):
    with serve(hello, headers=["x-team: web", "server: edge"], date_header=False) as server:
        response = httpx.get(server.url("/"))
    assert response.headers["x-team"] == "web"
    assert response.headers.get_list("server") == ["edge"]
    assert "date" not in response.headers


def test_no_server_header(serve):
    with serve(hello, server_header=False) as server:
        assert "server" not in httpx.get(server.url("/")).headers


def test_app_server_header_replaces_default(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"server", b"mine")]})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server:
        assert httpx.get(server.url("/")).headers.get_list("server") == ["mine"]


def test_keep_alive_reuses_connection(serve):
    with serve(hello) as server, server.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(sock)
            assert (status, body) == (200, b"hello")
            assert b"connection" not in headers


def test_http10_closes_unless_keep_alive(serve):
    with serve(hello) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = recv_all(sock)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"connection: close\r\n" in data
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = read_response(sock)
            assert headers[b"connection"] == b"keep-alive"
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert read_response(sock)[0] == 200


def test_http10_streaming_response_is_close_delimited(serve):
    with serve(streaming) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert body == b"one,two,three"


def test_connection_close_from_client(serve):
    with serve(hello) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(sock)
    assert data.count(b"HTTP/1.1 200") == 1 and b"connection: close\r\n" in data


def test_connection_close_from_app(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b"bye"})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_all(sock)
    assert data.endswith(b"\r\n\r\nbye") and data.count(b"connection: close") == 1


def test_pipelined_responses_come_in_order(serve):
    release_first = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await asyncio.get_running_loop().run_in_executor(None, release_first.wait, 5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in (b"slow", b"a", b"b")))
        release_first.set()
        bodies = [read_response(sock)[2] for _ in range(3)]
    assert bodies == [b"/slow", b"/a", b"/b"]


def test_many_pipelined_requests_with_bodies(serve):
    count = 200
    requests = b"".join(
        b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, len(b"x" * i), b"x" * i)
        for i in range(count)
    )
    with serve(echo) as server, server.connect() as sock:
        sender = threading.Thread(target=sock.sendall, args=(requests,))
        sender.start()
        for i in range(count):
            status, headers, body = read_response(sock)
            assert headers[b"x-path"] == b"/%d" % i and body == b"x" * i
        sender.join()


def test_interleaved_partial_requests_do_not_mix(serve):
    """Every connection is read into the server's one receive buffer: bytes one
    connection left unparsed must survive other connections' reads in between."""
    first = b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nX-Pad: " + b"a" * 300 + b"\r\n\r\n0123456789"
    second = b"POST /second HTTP/1.1\r\nHost: y\r\nContent-Length: 10\r\nX-Pad: " + b"b" * 300 + b"\r\n\r\nabcdefghij"
    with serve(echo) as server, server.connect() as one, server.connect() as two:
        one.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        two.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(first), 7):
            one.sendall(first[start : start + 7])
            two.sendall(second[start : start + 7])
            # The server reads each piece on its own before the next one is sent.
            wait_for(lambda: all_read(server))
        _, headers_one, body_one = read_response(one)
        _, headers_two, body_two = read_response(two)
    assert (headers_one[b"x-path"], body_one) == (b"/first", b"0123456789")
    assert (headers_two[b"x-path"], body_two) == (b"/second", b"abcdefghij")


@pytest.mark.tracebacks("Exception in ASGI application")
def test_many_distinct_request_header_names(serve):
    """Hostile clients can send endless new header names: the name cache starts
    over when full, every name still arrives lowercased, and a response header
    whose name a request put in the cache is still checked in full."""
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["headers"])
        value = b"ok" if scope["path"] != "/bad" else b"x\r\nx-evil: 1"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Name-7-3", value)]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app) as server, server.connect() as sock:
        for batch in range(12):  # 1,200 names: past the cache's 1,024
            names = b"".join(b"X-Name-%d-%d: v\r\n" % (batch, index) for index in range(99))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + names + b"\r\n")
            status, headers, _ = read_response(sock)
            assert (status, headers[b"x-name-7-3"]) == (200, b"ok")
        sock.sendall(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-Name-7-3: v\r\n\r\n")
        response = recv_all(sock)
    assert response.startswith(b"HTTP/1.1 500 ") and b"evil" not in response
    assert [name for name, _ in seen[5][1:4]] == [b"x-name-5-0", b"x-name-5-1", b"x-name-5-2"]


def test_chunked_request_body(serve):
    with serve(echo) as server, server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
        )
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"hello world")


def test_streaming_response_is_chunked(serve):
    with serve(streaming) as server:
        response = httpx.get(server.url("/"))
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.text == "one,two,three"


def test_streamed_chunks_leave_when_the_app_waits(serve):
    """Big streamed chunks are gathered into fewer writes, but never held while the app waits."""
    chunk = b"s" * 40000
    release: list[asyncio.Event] = []

    async def app(scope, receive, send):
        release.append(asyncio.Event())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await release[0].wait()  # until the client has seen all three chunks
        await send({"type": "http.response.body", "body": b"end"})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = recv_until(sock, b"s" * 40000 + b"\r\n" + b"9c40\r\n" + b"s" * 40000 + b"\r\n" + b"9c40\r\n" + chunk)
        server.call(release[0].set)
        received += recv_until(sock, b"0\r\n\r\n")
    assert decode_chunked(received.partition(b"\r\n\r\n")[2]) == chunk * 3 + b"end"


def test_single_body_without_length_gets_content_length(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"whole"})

    with serve(app) as server:
        response = httpx.get(server.url("/"))
    assert response.headers["content-length"] == "5" and "transfer-encoding" not in response.headers


def test_head_has_headers_but_no_body(serve):
    with serve(hello) as server, server.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(sock, b"hello")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in head
    assert rest.startswith(b"HTTP/1.1 200 OK"), "no body after a HEAD response"
    assert rest.endswith(b"\r\n\r\nhello")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(serve, status):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(sock, b"\r\n\r\n")
        while data.count(b"\r\n\r\n") < 2:
            data += sock.recv(65536)
    assert data.count(b"HTTP/1.1 %d" % status) == 2
    assert b"transfer-encoding" not in data and b"content-length" not in data


def test_expect_continue_sent_when_app_reads(serve):
    with serve(echo) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert recv_until(sock, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        assert read_response(sock)[2] == b"data"


def test_expect_continue_not_sent_when_app_answers_first(serve):
    with serve(hello) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in data
    assert b"connection: close" in data  # the unread body cannot be skipped safely


def test_body_streamed_in_several_messages(serve):
    body = bytes(range(256)) * 4096  # 1 MiB

    def send_slowly(sock):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for offset in range(0, len(body), 65536):
            sock.sendall(body[offset : offset + 65536])

    with serve(echo) as server, server.connect() as sock:
        sender = threading.Thread(target=send_slowly, args=(sock,))
        sender.start()
        status, headers, received = read_response(sock, timeout=20)
        sender.join()
    assert received == body
    assert int(headers[b"x-messages"]) > 1


def test_disconnect_delivered_mid_body(serve):
    seen = []
    done = threading.Event()

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                done.set()
                return

    with serve(app) as server:
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
            wait_for(lambda: "http.request" in seen)
        assert done.wait(5)
    assert seen == ["http.request", "http.disconnect"]


def test_send_after_disconnect_raises_oserror(serve):
    outcome = []
    done = threading.Event()

    async def app(scope, receive, send):
        assert scope["asgi"]["spec_version"] == "2.4"
        await receive()
        message = await receive()  # waits for the client to go away
        assert message["type"] == "http.disconnect"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:
            outcome.append(exc)
        done.set()

    with serve(app) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: server.state.in_flight == 1)
        assert done.wait(5)
    assert len(outcome) == 1


def test_limit_concurrency_answers_503(serve):
    release = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/block":
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app, limit_concurrency=1) as server, server.connect() as busy:
        busy.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: server.state.in_flight == 1)
        assert httpx.get(server.url("/")).status_code == 503
        release.set()
        assert read_response(busy)[0] == 200
        assert httpx.get(server.url("/")).status_code == 200


def test_scope_contents(serve):
    with serve(scope_app, root_path="/api") as server:
        response = httpx.get(
            server.url("/caf%C3%A9/a%2Fb?x=1&y=%20"),
            headers=[("X-Dup", "1"), ("x-dup", "2")],
        )
    scope = json.loads(response.text)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == "/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == "/api"
    assert scope["server"] == [server.host, server.port]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["state"] == {}
    dups = [value for name, value in scope["headers"] if name == "x-dup"]
    assert dups == ["1", "2"]
    assert all(name == name.lower() for name, _ in scope["headers"])


def test_each_request_has_its_own_context(serve):
    import contextvars

    var = contextvars.ContextVar("var", default="unset")
    seen = []

    async def app(scope, receive, send):
        seen.append(var.get())
        var.set(scope["path"])
        assert asyncio.current_task() is not None
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, httpx.Client() as client:
        # (the app's own assert fails the request: a 500)
        assert client.get(server.url("/a")).status_code == 200
        assert client.get(server.url("/b")).status_code == 200
    assert seen == ["unset", "unset"]


def test_task_factory_set_at_startup_makes_the_request_tasks(serve):
    made = []

    def factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            asyncio.get_running_loop().set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            return
        assert asyncio.current_task() in made
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app, lifespan="on") as server:
        assert httpx.get(server.url("/")).text == "ok"
    assert made


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_event_loops(http, loop):
    with run_server(echo, http=http, loop=loop) as server:
        assert httpx.post(server.url("/"), content=b"ping").text == "ping"


def test_ipv6_host(http):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with run_server(hello, http=http, host="::1") as server:
        assert httpx.get(f"http://[::1]:{server.port}/").text == "hello"


def test_unix_socket(http, tmp_path):
    path = str(tmp_path / "fs.sock")
    with run_server(hello, http=http, uds=path, port=8000):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            response = client.get("http://local/")
    assert response.text == "hello"


def test_file_descriptor(http):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with run_server(hello, http=http, fd=listener.fileno()):
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "hello"


def test_file_descriptor_of_a_unix_socket(http, tmp_path):
    """--fd reads the family from the socket: a Unix one is served as such."""
    path = str(tmp_path / "inherited.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    with run_server(hello, http=http, fd=listener.fileno()):
        with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
            assert client.get("http://local/").text == "hello"


def test_control_bytes_never_reach_the_log(serve, caplog):
    caplog.set_level("DEBUG")
    with serve(hello) as server, server.connect() as sock:
        sock.sendall(b"GET /a\x1b[31m\x7f\xff HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_all(sock).startswith(b"HTTP/1.1 400 ")
    messages = [record.getMessage() for record in caplog.records]
    assert any("Invalid HTTP request" in message for message in messages)
    assert not any(char in message for message in messages for char in "\x1b\x7f\xff")


def test_escape_for_log():
    from fastserve.asgi import escape_for_log

    assert escape_for_log(b"/a\x1b[31m\r\n\xff b") == "/a\\x1b[31m\\x0d\\x0a\\xff b"


def test_access_log_line(serve, caplog):
    caplog.set_level("INFO", logger="fastserve.access")
    with serve(hello) as server:
        httpx.get(server.url("/path?q=1"))
    lines = [record.getMessage() for record in caplog.records if record.name == "fastserve.access"]
    assert len(lines) == 1 and '"GET /path?q=1 HTTP/1.1" 200' in lines[0]


def test_no_access_log(serve, caplog):
    caplog.set_level("INFO", logger="fastserve.access")
    with serve(hello, access_log=False) as server:
        httpx.get(server.url("/"))
    assert not [record for record in caplog.records if record.name == "fastserve.access"]


def test_reset_connections_leave_nothing_behind(serve):
    import struct

    with serve(hello) as server:
        for i in range(300):
            sock = server.connect()
            if i % 3:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST
        wait_for(lambda: not server.state.connections and not server.state.tasks and server.state.in_flight == 0)


def test_broken_body_of_a_pipelined_request(serve):
    release = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/first":
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        await echo(scope, receive, send)

    with serve(app) as server, server.connect() as sock:
        sock.sendall(
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
        )
        release.set()
        response = recv_all(sock)
    assert response.startswith(b"HTTP/1.1 200 OK") and response.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 400 Bad Request" in response


def test_client_that_does_not_read_pauses_the_app(serve):
    sent = []
    chunk = b"x" * 65536
    total_chunks = 2000  # 125 MiB: far more than socket buffers hold

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(total_chunks):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent.append(1)
        except OSError:
            return

    def unread_bound(connection) -> int:
        """What may sit between the app and the client: kernel buffers on both sides, the transport's, held output."""
        server_socket = connection.transport.get_extra_info("socket")
        return (
            server_socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            + sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            + connection.transport.get_write_buffer_size()
            + MAX_HELD_STREAM
            + len(chunk)
        )

    with serve(app) as server, server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: any(conn.write_paused for conn in list(server.state.connections)))
        (connection,) = server.state.connections
        assert len(sent) * len(chunk) <= unread_bound(connection)
        paused_at = len(sent)
        # Reading 4 MiB lets the app go on by about that much, and no more.
        sock.settimeout(10)
        read = 0
        while read < 4 * 1024 * 1024:
            read += len(sock.recv(1 << 20))
        wait_for(lambda: len(sent) > paused_at and connection.write_paused)
        assert len(sent) * len(chunk) - read <= unread_bound(connection)
        assert len(sent) < total_chunks // 2


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a/b?c=d", "/a/b", "c=d"),
        (b"/a?c=d#frag", "/a", "c=d"),
        (b"/a#frag?c=d", "/a", ""),
        (b"/caf%C3%A9?x", "/caf\u00e9", "x"),
        (b"/", "/", ""),
    ],
)
def test_request_target_split(serve, target, path, query):
    with serve(scope_app) as server, server.connect() as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        scope = json.loads(read_response(sock)[2])
    assert (scope["path"], scope["query_string"]) == (path, query)


def test_absolute_form_target(serve):
    with serve(scope_app) as server, server.connect() as sock:
        sock.sendall(b"GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n")
        scope = json.loads(read_response(sock)[2])
    assert (scope["path"], scope["query_string"]) == ("/a/b", "c=d")


def test_date_header_follows_the_clock(serve):
    # The Date header is made once a second by the sweep: it must move on with
    # the clock, and never be more than about a second behind it.
    with serve(hello) as server, httpx.Client() as client:
        first = client.get(server.url()).headers["date"]
        deadline = time.monotonic() + 5
        while (date := client.get(server.url()).headers["date"]) == first:
            assert time.monotonic() < deadline, "the Date header did not change"
            time.sleep(0.05)
        moved_at = time.time()
    stamp = parsedate_seconds(date)
    assert stamp - parsedate_seconds(first) >= 1
    assert moved_at - 2.5 <= stamp <= moved_at + 0.5


def parsedate_seconds(value: str) -> float:
    return email.utils.parsedate_to_datetime(value).timestamp()


def test_held_pipelined_answer_is_not_delayed_by_a_slow_next_request(serve):
    release = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, timeout=5)[2] == b"/fast"  # while /slow is still waiting
        release.set()
        assert read_response(sock)[2] == b"/slow"


def test_pipelined_requests_do_not_share_context(serve):
    import contextvars

    var = contextvars.ContextVar("pipelined_var", default="unset")
    seen = []

    async def app(scope, receive, send):
        seen.append(var.get())
        var.set(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        for _ in range(3):
            read_response(sock)
    assert seen == ["unset", "unset", "unset"]


@pytest.mark.parametrize("size", [100, 20_000, 1_000_000])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bodies_small_and_large(serve, size, framing):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    async def app(scope, receive, send):
        headers = [(b"content-length", b"%d" % (2 * size))] if framing == "content-length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload, "more_body": True})
        await send({"type": "http.response.body", "body": payload})

    with serve(app) as server, httpx.Client() as client:
        for _ in range(2):  # and the connection stays usable
            response = client.get(server.url("/"))
            assert response.content == payload * 2
            assert ("content-length" in response.headers) == (framing == "content-length")


def test_mutable_scope_parts_are_per_request(serve):
    seen = []

    async def app(scope, receive, send):
        seen.append((dict(scope["extensions"]), dict(scope["asgi"]), dict(scope["state"])))
        scope["extensions"]["leak"] = True
        scope["asgi"]["leak"] = True
        scope["state"]["leak"] = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, httpx.Client() as client:
        client.get(server.url("/"))
        client.get(server.url("/"))
    offered = {
        "http.response.trailers": {},
        "http.response.early_hint": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }
    assert seen[1] == (offered, {"version": "3.0", "spec_version": "2.4"}, {})

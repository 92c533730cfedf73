"""The ASGI contract: message validation, app failures, ASGI 2, factories, lifespan."""

from __future__ import annotations

import contextvars
import types

import httpx
import pytest

from fastserve import Config
from fastserve.config import ConfigError
from tests.apps import hello
from tests.conftest import read_response, recv_all, run_server


def start(status=200, headers=()):
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


BAD_RESPONSES = {
    "body before start": [{"type": "http.response.body", "body": b"x"}],
    "status not int": [start(status="200")],
    "status out of range": [start(status=99)],
    "header with CRLF": [start(headers=[(b"x-a", b"a\r\nset-cookie: evil=1")])],
    "header with LF": [start(headers=[(b"x-a", b"a\nb")])],
    "header with NUL": [start(headers=[(b"x-a", b"a\x00")])],
    "header name with space": [start(headers=[(b"x a", b"1")])],
    "header name with colon": [start(headers=[(b"x:a", b"1")])],
    "header as str": [start(headers=[("x-a", "1")])],
    "header not a pair": [start(headers=[(b"x-a",)])],
    "body not bytes": [start(), {"type": "http.response.body", "body": "text"}],
    "unknown message": [start(), {"type": "http.response.bogus"}],
    "bad content-length": [start(headers=[(b"content-length", b"abc")]), {"type": "http.response.body"}],
    "body longer than content-length": [
        start(headers=[(b"content-length", b"2")]),
        {"type": "http.response.body", "body": b"too long"},
    ],
}


@pytest.mark.parametrize("name", list(BAD_RESPONSES))
@pytest.mark.tracebacks("Exception in ASGI application")
def test_invalid_messages_give_500(serve, name, caplog):
    messages = BAD_RESPONSES[name]

    async def app(scope, receive, send):
        for message in messages:
            await send(message)

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = recv_all(sock)
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"evil" not in response
    assert any(record.levelname == "ERROR" for record in caplog.records)


@pytest.mark.tracebacks("Exception in ASGI application")
def test_seen_header_name_still_has_its_value_checked(serve):
    """Header names are validated once and remembered; values are checked every time."""
    values = iter([b"fine", b"a\r\nset-cookie: evil=1"])

    async def app(scope, receive, send):
        await send(start(headers=[(b"x-seen", next(values)), (b"content-length", b"2")]))
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert (status, headers[b"x-seen"]) == (200, b"fine")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = recv_all(sock)
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"evil" not in response


def test_header_name_cache_is_bounded_and_holds_only_tokens():
    from fastserve import asgi

    saved = dict(asgi.HEADER_KEYS)
    try:
        for index in range(asgi.HEADER_KEYS_MAX + 50):
            assert asgi.header_key(b"X-Generated-%d" % index) == b"x-generated-%d" % index
            assert len(asgi.HEADER_KEYS) <= asgi.HEADER_KEYS_MAX
        assert b"X-Generated-%d" % (asgi.HEADER_KEYS_MAX + 49) in asgi.HEADER_KEYS  # full: it started over
        for bad in (b"x a", b"x:a", b"", b"x\r\n", "x-a"):
            with pytest.raises(asgi.ASGIMessageError):
                asgi.header_key(bad)
            assert bad not in asgi.HEADER_KEYS
        # Request header names are lowercased either way, remembered only when tokens.
        assert asgi.request_header_key(b"X-Token") == b"x-token" and b"X-Token" in asgi.HEADER_KEYS
        assert asgi.request_header_key(b"X Space") == b"x space" and b"X Space" not in asgi.HEADER_KEYS
    finally:
        asgi.HEADER_KEYS.clear()
        asgi.HEADER_KEYS.update(saved)


@pytest.mark.tracebacks("Exception in ASGI application")
def test_header_lines_cached_or_not_are_the_same_and_still_checked(serve):
    values = iter([b"first", b"first", b"x" * 200, b"x" * 200])

    async def app(scope, receive, send):
        await receive()
        headers = [(b"x-value", next(values)), [b"x-as-list", b"ok"], (b"content-type", b"text/plain")]
        if scope["path"] == "/bad":
            headers.append((b"content-type", b"text/plain\r\nx-evil: 1"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app) as server, httpx.Client() as client:
        for expected in ("first", "first", "x" * 200, "x" * 200):
            response = client.get(server.url("/"))
            assert response.headers["x-value"] == expected
            assert (response.headers["x-as-list"], response.headers["content-type"]) == ("ok", "text/plain")
        response = client.get(server.url("/bad"))
        assert response.status_code == 500 and "x-evil" not in response.headers


def test_header_line_cache_is_bounded():
    from fastserve.protocols import http1_cycle as http1  # (the Python module: its globals are attributes)

    def start(value):
        no_connection = types.SimpleNamespace(state=None)  # (start_response touches neither)
        cycle = http1.RequestCycle(no_connection, {"method": "GET"}, True, True, False, False)
        cycle.start_response({"type": "http.response.start", "status": 200, "headers": [(b"x-id", value)]})

    saved = dict(http1.HEADER_LINES)
    try:
        for index in range(http1.HEADER_LINES_MAX + 10):
            start(b"%d" % index)
            assert len(http1.HEADER_LINES) <= http1.HEADER_LINES_MAX
        assert (b"x-id", b"%d" % (http1.HEADER_LINES_MAX + 9)) in http1.HEADER_LINES  # full: it started over
        start(b"v" * (http1.HEADER_LINE_CACHED_VALUE + 1))
        assert (b"x-id", b"v" * (http1.HEADER_LINE_CACHED_VALUE + 1)) not in http1.HEADER_LINES
    finally:
        http1.HEADER_LINES.clear()
        http1.HEADER_LINES.update(saved)


@pytest.mark.tracebacks("Exception in ASGI application")
def test_exception_before_response_gives_500(serve, caplog):
    async def app(scope, receive, send):
        raise RuntimeError("boom")

    with serve(app) as server:
        response = httpx.get(server.url("/"))
    assert response.status_code == 500
    assert any(record.exc_info and "boom" in str(record.exc_info[1]) for record in caplog.records)


@pytest.mark.tracebacks("Exception in ASGI application")
def test_exception_after_response_started_closes(serve):
    async def app(scope, receive, send):
        await send(start())
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom")

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = recv_all(sock)
    assert response.startswith(b"HTTP/1.1 200 OK") and not response.endswith(b"0\r\n\r\n")


def test_return_without_response_gives_500(serve):
    async def app(scope, receive, send):
        return None

    with serve(app) as server:
        assert httpx.get(server.url("/")).status_code == 500


def test_return_after_start_only_gives_500(serve):
    async def app(scope, receive, send):
        await send(start())

    with serve(app) as server:
        assert httpx.get(server.url("/")).status_code == 500


@pytest.mark.tracebacks("Exception in ASGI application")
def test_message_after_complete_is_an_error(serve, caplog):
    async def app(scope, receive, send):
        await hello(scope, receive, send)
        await send({"type": "http.response.body", "body": b"more"})

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"hello")
    assert any(
        "after the response completed" in str(record.exc_info[1]) for record in caplog.records if record.exc_info
    )


def test_asgi2_application(http):
    class App:
        def __init__(self, scope):
            self.scope = scope

        async def __call__(self, receive, send):
            await hello(self.scope, receive, send)

    with run_server(App, http=http) as server:
        assert httpx.get(server.url("/")).text == "hello"


def test_interface_forced(http):
    def app(scope):
        async def instance(receive, send):
            await hello(scope, receive, send)

        return instance

    with run_server(app, http=http, interface="asgi2") as server:
        assert httpx.get(server.url("/")).text == "hello"


def test_factory_and_app_dir(http, tmp_path):
    (tmp_path / "factory_module.py").write_text("from tests.apps import hello\n\ndef create_app():\n    return hello\n")
    with run_server("factory_module:create_app", http=http, factory=True, app_dir=str(tmp_path)) as server:
        assert httpx.get(server.url("/")).text == "hello"


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_such_module_xyz:app", 'Could not import module "no_such_module_xyz"'),
        ("tests.apps:nope", 'Attribute "nope" not found in module "tests.apps"'),
        ("tests.apps", "must be in format"),
    ],
)
def test_bad_app_strings(app, message):
    with pytest.raises(ConfigError, match=message):
        Config(app, log_config=None).load()


def lifespan_app(events, fail=False, state_value="ready"):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            if fail:
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            scope["state"]["value"] = state_value
            events.append("startup")
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        events.append(scope["state"]["value"])
        scope["state"]["value"] = "changed by request"
        await hello(scope, receive, send)

    return app


def test_lifespan_startup_state_and_shutdown(http):
    events = []
    with run_server(lifespan_app(events), http=http, lifespan="on") as server:
        assert events == ["startup"]
        httpx.get(server.url("/"))
        httpx.get(server.url("/"))
        server.stop()
    assert events == ["startup", "ready", "ready", "shutdown"]


def test_lifespan_startup_failure(http):
    server_started = []
    with pytest.raises(AssertionError, match="did not start"):
        with run_server(lifespan_app([], fail=True), http=http, lifespan="on") as server:
            server_started.append(server)
    assert not server_started


def test_lifespan_auto_tolerates_apps_without_it(http):
    async def app(scope, receive, send):
        assert scope["type"] == "http"
        await hello(scope, receive, send)

    with run_server(app, http=http, lifespan="auto") as server:
        assert httpx.get(server.url("/")).text == "hello"


@pytest.mark.tracebacks("Exception in 'lifespan' protocol")
def test_lifespan_on_requires_support(http):
    async def app(scope, receive, send):
        assert scope["type"] == "http"

    with pytest.raises(AssertionError, match="did not start"):
        with run_server(app, http=http, lifespan="on"):
            pass


REQUEST_ID = contextvars.ContextVar("request_id", default="unset")
POOL = contextvars.ContextVar("pool", default="none")


def context_app():
    """Sets a context variable at lifespan startup; each request reports it, then sets another."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            POOL.set("pool-from-startup")
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen = f"{POOL.get()} {REQUEST_ID.get()}".encode()
        REQUEST_ID.set(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": seen})

    return app


@pytest.mark.parametrize("reset", [False, True])
def test_lifespan_context_reaches_requests_unless_reset(http, reset):
    with run_server(context_app(), http=http, lifespan="on", reset_contextvars=reset) as server:
        with server.connect() as sock:
            # Pipelined: the second request starts from where the first one ends.
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            first, second = read_response(sock)[2], read_response(sock)[2]
    expected = b"none unset" if reset else b"pool-from-startup unset"
    assert first == second == expected

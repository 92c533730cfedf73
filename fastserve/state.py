"""What the connections of one server process share, computed once from Config."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from fastserve.asgi import ASGIApp, build_scope_template

# 64 KiB, libuv's own suggestion: a read, and the body chunk the parser copies
# out of it, stays below glibc's mmap threshold, so uploads reuse heap memory
# instead of faulting in fresh pages for every read (measured: 256 KiB reads
# cost about 0.4 s of server CPU per GB uploaded, 64 KiB reads about 0.25).
RECEIVE_BUFFER_SIZE = 64 * 1024


class ServerState:
    """Settings and live counters every connection reads; the server owns and ticks it."""

    def __init__(
        self,
        *,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        parser_factory: Callable[[Any], Any],
        root_path: str = "",
        scheme: str = "http",
        tls: Any = None,
        proxy: Any = None,
        websocket: Any = None,
        http2: Any = None,
        server_header: bool = True,
        date_header: bool = True,
        extra_headers: list[tuple[str, str]] | None = None,
        access_log: bool = True,
        access_format: Any = None,
        timeout_keep_alive: float = 5.0,
        timeout_request_header: float = 30.0,
        timeout_request_body: float = 30.0,
        limit_request_line: int = 8190,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        limit_concurrency: int | None = None,
        max_head_size: int | None = None,
    ) -> None:
        self.app = app
        self.loop = loop
        self.parser_factory = parser_factory
        self.root_path = root_path
        self.scheme = scheme
        # With TLS, a fastserve.tls.TLSInfo: what each connection's "tls" scope extension is made from.
        self.tls = tls
        # With --proxy-headers, a fastserve.proxy.ProxyTrust: whose forwarding headers count.
        self.proxy = proxy
        # A fastserve.protocols.websocket.WebSocketSettings, or None with --ws none.
        self.websocket = websocket
        # A fastserve.protocols.http2.HTTP2Settings, or None with --no-http2.
        self.http2 = http2
        self.access_log = access_log
        # A fastserve.access_log format for --access-log-format/--access-log-json, else None.
        self.access_format = access_format
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_request_header = timeout_request_header
        # Longest wait for the next bytes of a request body (0: no limit).
        self.timeout_request_body = timeout_request_body
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_field_size = limit_request_field_size
        # By default the whole head may hold the request line and every allowed field.
        self.max_head_size = max_head_size or (
            limit_request_line + limit_request_fields * (limit_request_field_size + 4) + 4
        )
        self.limit_concurrency = limit_concurrency or 0
        # What every request's scope starts from (see HTTP1Protocol.connection_scope).
        self.scope_template = build_scope_template(root_path)
        self.lifespan_state: dict[str, Any] = {}
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.requests_started = 0
        # --limit-max-requests (0: none), and what the protocol calls when it is reached.
        self.max_requests = 0
        self.on_max_requests = None
        self.shutting_down = False
        # Every request runs in a copy of this: the context the server started
        # in, until the server puts the lifespan's (or an empty one) in its place.
        self.context = contextvars.copy_context()
        self.now = loop.time()
        # One receive buffer for every connection of this server (see
        # HTTP1Protocol.get_buffer): the loop reads one connection's bytes into it
        # and the parser copies out what it keeps before the next read.
        self.receive_buffer = memoryview(bytearray(RECEIVE_BUFFER_SIZE))

        extra_headers = extra_headers or []
        # A custom Server header (--header server:...) replaces the default one.
        if any(name.lower() == "server" for name, _ in extra_headers):
            server_header = False
        self._server_line = b"server: fastserve\r\n" if server_header else b""
        self._date_enabled = date_header
        self._extra = b"".join(
            b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")) for name, value in extra_headers
        )
        self._date_line = b""
        self.default_headers = b""
        self.tick(loop.time())

    def tick(self, now: float) -> None:
        """Once a second: the clock the deadlines use and the Date header."""
        self.now = now
        if self._date_enabled:
            self._date_line = b"date: %s\r\n" % formatdate(usegmt=True).encode("ascii")
        self.default_headers = self._server_line + self._date_line + self._extra

    def default_headers_without(self, server: bool, date: bool) -> bytes:
        """The default headers less those the application set itself."""
        return (b"" if server else self._server_line) + (b"" if date else self._date_line) + self._extra

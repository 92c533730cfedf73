"""One HTTP/2 stream: a request and its response, the ``receive`` and ``send`` an app gets.

``Stream`` is the app call (``cycle.AppCycle``) plus HTTP/2's framing, over
the connection's engine (``http2.HTTP2Protocol``): the request body as DATA
frames arrive (``body_received``, flow-controlled credit returned as the app
reads), the response as HEADERS and DATA within the client's window, trailers,
files, and the answers to a reset or a lost connection.

Compiled by Cython in pure-Python mode into ``fastserve._speedups.http2_stream``
(``http2_stream.pxd``); the connection and its streams cimport each other, so
their calls both ways are C calls.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from fastserve.access_log import log_exchange
from fastserve.asgi import (
    body_bytes,
    check_header_value,
    check_trailer,
    header_key,
    header_pair,
    validate_status,
)
from fastserve.errors import ASGIMessageError, ClientDisconnected
from fastserve.protocols import cycle as app_cycle
from fastserve.protocols import http2_h2
from fastserve.protocols.cycle import NO_BODY_STATUSES
from fastserve.protocols.refusals import error_body
from fastserve.sendfile import file_size, path_to_send, read_chunk, zero_copy_region

if TYPE_CHECKING:
    from fastserve.protocols.http2 import HTTP2Protocol

# Connection-specific fields (RFC 9113 8.2.2): a request carrying one is
# malformed (the engine refuses it); in a response they are dropped.
CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
STATUS_CODES = {status: b"%d" % status for status in range(100, 600)}


class Stream(app_cycle.AppCycle):
    """One request and its response on an HTTP/2 connection: the ``receive`` and ``send`` an app gets
    (the app call: app_cycle.AppCycle)."""

    def __init__(self, conn: HTTP2Protocol, stream_id: int, body_complete: bool) -> None:
        self.setup(conn, stream_id, body_complete)

    def setup(self, conn: HTTP2Protocol, stream_id: int, body_complete: bool) -> None:
        """What __init__ does. The connection makes its streams with ``__new__`` and this, C calls when
        compiled: calling the class takes a tuple of arguments, its base being another module's."""
        self.conn = conn
        self.state = conn.state
        self.stream_id = stream_id
        self.scope: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        # Request body: chunks received and not yet read, and their flow-controlled size.
        self.body: list[bytes] = []
        self.body_credit = 0
        self.body_complete = body_complete
        self.body_delivered = False
        self.waiter: asyncio.Future[None] | None = None
        self.gone = False  # reset by the client or by the server, or the connection lost
        self.stalled_at = 0.0  # since when send() waits for the client's window (0.0: it does not)
        # Response
        self.started = False
        self.head_sent = False
        self.complete = False
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.no_body = False
        self.trailers = False
        self.awaiting_trailers = False
        self.bytes_sent = 0
        self.started_at = 0.0

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        waiter = self.waiter = self.conn.state.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    # Events from the connection ---------------------------------------------

    def body_received(self, data: bytes, credit: int, ended: bool) -> None:
        if data:
            self.body.append(data)
        self.body_credit += credit
        if ended:
            self.body_complete = True
        self.wake()

    def body_ended(self) -> None:
        self.body_complete = True
        self.wake()

    def was_reset(self) -> None:
        """Reset, by the client or the server: the app hears http.disconnect, and send() raises."""
        self.gone = True
        self.conn.stream_done(self)
        self.wake()

    def reset(self, error_code: int) -> None:
        self.conn.reset_stream(self.stream_id, error_code)
        self.was_reset()

    def connection_lost(self) -> None:
        self.gone = True
        self.wake()

    # The app's side ---------------------------------------------------------

    def client_gone(self) -> bool:
        return self.gone

    def app_done(self) -> None:
        self.conn.running -= 1
        app_cycle.AppCycle.app_done(self)

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.gone or self.complete:
                return {"type": "http.disconnect"}  # (a new dict each time: an app may change it)
            if self.body:
                return self.take_body()
            if self.body_complete and not self.body_delivered:
                self.body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.wait()

    def take_body(self) -> dict[str, Any]:
        chunks = self.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        conn = self.conn
        if self.body_credit:
            # Only what the app has read is given back to the client's window.
            conn.engine.consumed(self.stream_id, self.body_credit)
            self.body_credit = 0
            conn.flush_soon()
        more_body = not self.body_complete
        self.body_delivered = not more_body
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone:
            raise ClientDisconnected("the client reset the stream or closed the connection")
        kind = message["type"]
        if not self.started:
            if kind == "http.response.start":
                self.start_response(message)
            elif kind == "http.response.early_hint":
                self.early_hint(message)
            else:
                raise ASGIMessageError(f"Expected 'http.response.start', got {kind!r}")
        elif self.awaiting_trailers:
            if kind != "http.response.trailers":
                raise ASGIMessageError(f"Expected 'http.response.trailers', got {kind!r}")
            await self.send_trailers(message)
        elif self.complete:
            raise ASGIMessageError(f"Unexpected {kind!r} after the response completed")
        elif kind == "http.response.early_hint":
            if not self.head_sent:  # (as on HTTP/1.1: once the head has left, a hint is too late)
                self.early_hint(message)
        elif kind == "http.response.body":
            # (Optional keys are read with "in" and [], not .get(): on the hot
            # path a method call costs several times a mapping lookup.)
            body = message["body"] if "body" in message else b""
            if type(body) is not bytes:
                body = body_bytes(body)
            await self.send_body(body, "more_body" in message and bool(message["more_body"]))
        elif kind == "http.response.pathsend":
            fd = os.open(path_to_send(message), os.O_RDONLY | os.O_CLOEXEC)
            try:
                await self.send_file_region(fd, 0, file_size(fd), False)
            finally:
                os.close(fd)
        elif kind == "http.response.zerocopysend":
            fd, offset, count, from_position = zero_copy_region(message)
            await self.send_file_region(fd, offset, count, "more_body" in message and bool(message["more_body"]))
            if from_position:
                os.lseek(fd, offset + count, os.SEEK_SET)
        else:
            raise ASGIMessageError(f"Expected 'http.response.body', got {kind!r}")

    def start_response(self, message: dict[str, Any]) -> None:
        status = message["status"]
        validate_status(status)
        state = self.conn.state
        headers = [(b":status", STATUS_CODES[status])]
        custom_server = custom_date = False
        for item in message["headers"] if "headers" in message else ():
            name, value = header_pair(item)
            key = header_key(name)
            check_header_value(name, value)
            if key in CONNECTION_SPECIFIC:
                continue
            if key == b"server":
                custom_server = True
            elif key == b"date":
                custom_date = True
            headers.append((key, value))
        headers.extend(default_header_pairs(state.default_headers_without(custom_server, custom_date)))
        self.status = status
        self.response_headers = headers
        self.trailers = "trailers" in message and bool(message["trailers"])
        self.no_body = status in NO_BODY_STATUSES or self.scope["method"] == "HEAD"
        self.started = True

    def early_hint(self, message: dict[str, Any]) -> None:
        links = message["links"] if "links" in message else ()
        for link in links:
            check_header_value(b"link", link)
        if links:
            fields = [(b":status", b"103")] + [(b"link", link) for link in links]
            self.conn.engine.send_headers(self.stream_id, fields, False)
            self.conn.flush_soon()

    async def send_body(self, body: bytes, more_body: bool) -> None:
        conn = self.conn
        engine = conn.engine
        stream_id = self.stream_id
        ends = not more_body and not self.trailers
        if not self.head_sent:
            self.head_sent = True
            engine.send_headers(stream_id, self.response_headers, ends and (self.no_body or not body))
            if ends and (self.no_body or not body):
                self.finish()
                return
        if self.no_body:
            body = b""
        total = len(body)
        offset = 0
        while offset < total:
            window = engine.window(stream_id)
            if window <= 0:
                conn.flush_soon()
                self.stalled_at = conn.state.now
                try:
                    await self.wait()
                finally:
                    self.stalled_at = 0.0
                if self.gone:
                    raise ClientDisconnected("the client reset the stream or closed the connection")
                continue
            chunk = body[offset : offset + window] if offset or window < total else body
            offset += len(chunk)
            engine.send_data(stream_id, chunk, ends and offset == total)
            self.bytes_sent += len(chunk)
            if conn.write_paused:
                conn.flush()  # (now: what is waited for must be in the transport)
                await conn.drain()
                if self.gone:
                    raise ClientDisconnected("the client reset the stream or closed the connection")
        if ends and total == 0:
            engine.send_data(stream_id, b"", True)
        if not more_body:
            if self.trailers:
                self.awaiting_trailers = True
            else:
                self.finish()
                return
        conn.flush_soon()

    async def send_file_region(self, fd: int, offset: int, count: int, more_body: bool) -> None:
        """A region of a file as body bytes: read in chunks, each sent as a body message would be.

        (DATA frames are framed by the engine, so the kernel cannot send the
        file itself as it does on HTTP/1.1; what is read waits for the window.)
        """
        while count:
            chunk = read_chunk(fd, offset, count)
            offset += len(chunk)
            count -= len(chunk)
            await self.send_body(chunk, True)
        if not more_body:
            await self.send_body(b"", False)

    async def send_trailers(self, message: dict[str, Any]) -> None:
        fields = [check_trailer(item) for item in (message["headers"] if "headers" in message else ())]
        more = "more_trailers" in message and bool(message["more_trailers"])
        if fields or not more:
            self.conn.engine.send_headers(self.stream_id, fields, not more)
        if not more:
            self.awaiting_trailers = False
            self.finish()
        else:
            self.conn.flush_soon()

    def finish(self) -> None:
        self.complete = True
        conn = self.conn
        if not self.body_complete:
            # Answered before the request body ended: the client may stop sending it (RFC 9113 8.1).
            conn.reset_stream(self.stream_id, http2_h2.NO_ERROR)
        conn.flush_soon()
        if conn.state.access_log:
            log_exchange(conn, self.scope, self.status, self.response_headers, self.bytes_sent, self.started_at)
        conn.stream_done(self)
        self.wake()

    def abort(self, status: int) -> None:
        """End a stream whose app failed: an error response if nothing was sent, else RST_STREAM."""
        if self.complete:
            return
        if self.gone:
            self.complete = True
            return
        if not self.head_sent:
            self.answer_error(status)
        else:
            self.complete = True
            self.conn.reset_stream(self.stream_id, http2_h2.INTERNAL_ERROR)
            self.conn.flush_soon()
            self.conn.stream_done(self)

    def answer_error(self, status: int) -> None:
        """A short plain-text error answer, the stream then done."""
        body = error_body(status)
        self.status = status
        self.response_headers = [
            (b":status", STATUS_CODES[status]),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            *default_header_pairs(self.conn.state.default_headers),
        ]
        self.head_sent = True
        engine = self.conn.engine
        engine.send_headers(self.stream_id, self.response_headers, False)
        engine.send_data(self.stream_id, body, True)  # (short: within any window a client may give)
        self.bytes_sent = len(body)
        self.finish()


_DEFAULT_PAIRS: dict[bytes, list[tuple[bytes, bytes]]] = {}


def default_header_pairs(lines: bytes) -> list[tuple[bytes, bytes]]:
    """The server's default header lines (Server, Date, --header) as HTTP/2 fields; they change once a second."""
    pairs = _DEFAULT_PAIRS.get(lines)
    if pairs is None:
        if len(_DEFAULT_PAIRS) > 16:
            _DEFAULT_PAIRS.clear()
        pairs = []
        for line in lines.split(b"\r\n"):
            if line:
                name, _, value = line.partition(b":")
                pairs.append((name.strip().lower(), value.strip()))
        _DEFAULT_PAIRS[lines] = pairs
    return pairs

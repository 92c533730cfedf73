# cython: annotation_typing=False
"""HTTP/1.1's request cycle: one request and its response, the ``receive`` and ``send`` an app gets.

``RequestCycle`` is the app call (``cycle.AppCycle``) plus HTTP/1.1's framing.
The connection (``http1.HTTP1Protocol``) makes one per request head and hands
it the body as the parser delivers it (``on_body``: ``cycle.body`` and
``wake``); ``receive`` takes it from there. ``send`` checks the app's messages
and encodes the response: the head once the first body message says how to
frame it (Content-Length, chunked, or a close), the body, trailers, files.

Compiled by Cython in pure-Python mode into ``fastserve._speedups.http1_cycle``
(typed by ``fastserve/_speedups/http1_cycle.pxd``); the connection's calls
into it, and its calls back (``write``, ``hold``, ``cycle_done``), are C calls.
"""

from __future__ import annotations

import logging
import os
from http import HTTPStatus
from typing import TYPE_CHECKING

from fastserve.access_log import log_exchange
from fastserve.asgi import (
    HEADER_KEYS,
    HEADER_VALUE_FORBIDDEN,
    body_bytes,
    check_header_value,
    early_hint_line,
    header_key,
    header_pair,
    trailer_line,
    validate_status,
)
from fastserve.errors import ASGIMessageError, ClientDisconnected
from fastserve.protocols import cycle as app_cycle
from fastserve.protocols.cycle import NO_BODY_STATUSES
from fastserve.sendfile import file_size, path_to_send, send_file, zero_copy_region

if TYPE_CHECKING:
    from fastserve.asgi import Message, Scope
    from fastserve.protocols.http1 import HTTP1Protocol

error_logger = logging.getLogger("fastserve.error")

# Answers to pipelined requests held back to leave in one write, at most this
# much; and big chunks of a streamed body, at most this much.
MAX_HELD_OUTPUT = 64 * 1024
MAX_HELD_STREAM = 1024 * 1024
# Ordinary response header lines already checked and encoded, by their (name,
# value) pair: apps send the same few over and over. Short values only, and
# when full it starts over (unique values such as request ids come and go).
HEADER_LINES = {}
HEADER_LINES_MAX = 4096
HEADER_LINE_CACHED_VALUE = 64
# Response bodies from this size on are written without being copied.
ZERO_COPY_BODY = 16 * 1024
# The largest response Content-Length (a Py_ssize_t when compiled).
MAX_CONTENT_LENGTH = 2**63 - 1
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS_LINE = b"HTTP/1.1 103 Early Hints\r\n"
LAST_CHUNK = b"0\r\n\r\n"
NO_FRAMING = ()
_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("ascii")) for status in HTTPStatus
}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class RequestCycle(app_cycle.AppCycle):
    """One request and its response: the ``receive`` and ``send`` an app gets (the app call: app_cycle.AppCycle)."""

    def __init__(self, conn, scope, http11, keep_alive, expect_continue, accepts_trailers) -> None:
        # (Annotated at setup.)
        self.setup(conn, scope, http11, keep_alive, expect_continue, accepts_trailers)

    def setup(
        self,
        conn: HTTP1Protocol,
        scope: Scope,
        http11: bool,
        keep_alive: bool,
        expect_continue: bool,
        accepts_trailers: bool,
    ) -> None:
        """What __init__ does. The protocol makes its cycles with ``__new__`` and this, C calls when
        compiled: calling the class takes a tuple of arguments, its base being another module's."""
        self.conn = conn
        self.state = conn.state
        self.scope = scope
        self.http11 = http11
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.is_head = scope["method"] == "HEAD"
        self.body = []
        self.body_size = 0
        self.body_complete = False
        self.body_delivered = False
        self.body_error = 0
        self.waiter = None
        self.task = None
        self.running = False
        self.started = False
        self.head_sent = False
        self.complete = False
        self.status = 0
        self.head = None
        self.content_length = -1
        self.app_chunked = False
        self.app_close = False
        self.custom_server = False
        self.custom_date = False
        self.chunked = False
        self.no_body = False
        self.bytes_sent = 0
        self.started_at = 0.0
        self.response_headers = None
        # Trailers: the app promised them, the client takes them (TE: trailers),
        # they go out (chunked), the body is done and they are awaited.
        self.trailers = False
        self.accepts_trailers = accepts_trailers
        self.send_trailers = False
        self.awaiting_trailers = False
        self.trailer_lines = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def client_gone(self) -> bool:
        # (After http.disconnect, for a client gone or a body broken, nobody waits for the answer.)
        return self.conn.closed or self.body_error != 0

    def abort(self, status: int) -> None:
        """End a cycle that went wrong: an error response if nothing was sent, else a close."""
        if self.complete:
            return
        self.complete = True
        conn = self.conn
        if self.body_error:
            status = self.body_error
        if not self.head_sent:
            conn.send_error(status, self)
        else:
            conn.close()
        conn.cycle_done(self)

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not self.started and not self.body_complete and not conn.closed:
                conn.write(CONTINUE_RESPONSE)
        while True:
            if self.body_error or conn.closed or self.complete:
                return {"type": "http.disconnect"}
            if self.body_size or (self.body_complete and not self.body_delivered):
                return self.take_body()
            if conn.read_paused and not self.body_delivered:
                conn.maybe_resume_reading()
            waiter = self.waiter = conn.state.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None

    def take_body(self) -> Message:
        chunks = self.body
        if len(chunks) == 1:
            body = chunks[0]
        else:
            body = b"".join(chunks)
        conn = self.conn
        conn.buffered -= self.body_size
        self.body = []
        self.body_size = 0
        more_body = not self.body_complete
        if not more_body:
            self.body_delivered = True
        if conn.read_paused:
            conn.maybe_resume_reading()
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: Message) -> None:
        conn = self.conn
        if conn.write_paused and not conn.closed:
            await conn.drain()
        if conn.closed:
            raise ClientDisconnected("the client disconnected")
        message_type = message["type"]
        if not self.started:
            if message_type == "http.response.start":
                self.start_response(message)
            elif message_type == "http.response.early_hint":
                self.early_hint(message)
            else:
                raise ASGIMessageError(f"Expected 'http.response.start', got {message_type!r}")
            return
        if self.complete:
            raise ASGIMessageError(f"Unexpected {message_type!r} after the response completed")
        if message_type != "http.response.body" or self.awaiting_trailers:
            await self.send_extension(message_type, message)
            return
        # (Optional keys are read with "in" and [], not .get(): on the hot path a
        # method call costs several times a mapping lookup.)
        body = message["body"] if "body" in message else b""
        if type(body) is not bytes:
            body = body_bytes(body)
        self.write_body(body, "more_body" in message and bool(message["more_body"]))

    async def send_extension(self, message_type: str, message: Message) -> None:
        """The messages of the response extensions the scope offers."""
        if self.awaiting_trailers and message_type != "http.response.trailers":
            raise ASGIMessageError(f"Expected 'http.response.trailers', got {message_type!r}")
        if message_type == "http.response.trailers":
            self.write_trailers(message)
        elif message_type == "http.response.pathsend":
            await self.send_path(message)
        elif message_type == "http.response.zerocopysend":
            await self.send_zero_copy(message)
        elif message_type == "http.response.early_hint":
            self.early_hint(message)
        else:
            raise ASGIMessageError(f"Expected 'http.response.body', got {message_type!r}")

    def early_hint(self, message: Message) -> None:
        """A 103 with the app's Link values, while the final head has not left (and never to HTTP/1.0)."""
        lines = [early_hint_line(link) for link in (message["links"] if "links" in message else ())]
        if lines and self.http11 and not self.head_sent:
            self.conn.write(b"".join((EARLY_HINTS_LINE, *lines, b"\r\n")))

    def write_trailers(self, message: Message) -> None:
        if not self.awaiting_trailers:
            if self.trailers:
                raise ASGIMessageError("'http.response.trailers' before the last 'http.response.body'")
            raise ASGIMessageError("'http.response.trailers' without 'trailers' in 'http.response.start'")
        lines = [trailer_line(item) for item in (message["headers"] if "headers" in message else ())]
        if self.send_trailers:
            self.trailer_lines = lines if self.trailer_lines is None else self.trailer_lines + lines
        if "more_trailers" in message and message["more_trailers"]:
            return
        if self.send_trailers:
            self.conn.write(b"".join((b"0\r\n", *self.trailer_lines, b"\r\n")))
        self.awaiting_trailers = False
        self.finish()

    async def send_path(self, message: Message) -> None:
        """``http.response.pathsend``: the whole file at an absolute path is the rest of the body."""
        fd = os.open(path_to_send(message), os.O_RDONLY | os.O_CLOEXEC)
        try:
            await self.send_file_region(fd, 0, file_size(fd), False)
        finally:
            os.close(fd)

    async def send_zero_copy(self, message: Message) -> None:
        """``http.response.zerocopysend``: a region of an open file, as a body message would."""
        fd, offset, count, from_position = zero_copy_region(message)
        await self.send_file_region(fd, offset, count, "more_body" in message and bool(message["more_body"]))
        if from_position:
            os.lseek(fd, offset + count, os.SEEK_SET)

    async def send_file_region(self, fd: int, offset: int, count: int, more_body: bool) -> None:
        """Body bytes that are a region of a file: framed as write_body frames bytes, sent by send_file."""
        parts = [] if self.head_sent else self.finish_head(count, more_body)
        after = self.frame(parts, count, more_body)
        self.head_sent = True
        conn = self.conn
        if parts:
            conn.writelines(parts)
        if after is not None and count:
            await send_file(conn, fd, offset, count)
        if after:
            conn.writelines(list(after))
        if not more_body:
            self.end_body()

    def start_response(self, message: Message) -> None:
        """Check ``http.response.start`` and encode its headers; the framing waits for the body."""
        status = message["status"] if "status" in message else None
        if type(status) is not int or not 200 <= status <= 599:
            validate_status(status)  # raises, saying what is wrong
        self.status = status
        if "trailers" in message and message["trailers"]:
            self.trailers = True
        # [status line, default headers, header lines...]: one join with the
        # framing headers and the body when the first body chunk comes.
        head = [status_line(status), b""]
        headers = message["headers"] if "headers" in message else ()
        self.response_headers = headers  # for an access log that names response headers
        for item in headers:
            if type(item) is tuple:
                try:
                    line = HEADER_LINES.get(item)
                except TypeError:  # an unhashable name or value: refused below
                    line = None
                if line is not None:
                    head.append(line)
                    continue
                name, value = item if len(item) == 2 else header_pair(item)
            else:
                name, value = header_pair(item)
            # Names seen before were validated then (asgi.HEADER_KEYS).
            key = HEADER_KEYS.get(name) if type(name) is bytes else None
            if key is None:
                key = header_key(name)
            # Lines of ordinary headers are remembered; content-length, server
            # and date also set framing or defaults, so they go through here.
            ordinary = False
            if key == b"content-length":
                # Digits only: that is also the whole value check.
                if (
                    self.content_length >= 0
                    or type(value) is not bytes
                    or not value.isdigit()
                    or (len(value) > 18 and int(value) > MAX_CONTENT_LENGTH)
                ):
                    raise ASGIMessageError(f"Invalid response Content-Length {value!r}")
                self.content_length = int(value)
            else:
                if type(value) is not bytes or len(value.translate(None, HEADER_VALUE_FORBIDDEN)) != len(value):
                    check_header_value(name, value)  # raises, saying what is wrong
                if key == b"transfer-encoding":
                    if value.strip().lower() != b"chunked":
                        raise ASGIMessageError(f"Unsupported response Transfer-Encoding {value!r}")
                    self.app_chunked = True
                    continue
                elif key == b"connection":
                    if b"close" in value.lower():
                        self.app_close = True
                    continue
                elif key == b"server":
                    self.custom_server = True
                elif key == b"date":
                    self.custom_date = True
                else:
                    ordinary = True
            line = b"".join((name, b": ", value, b"\r\n"))
            if ordinary and type(item) is tuple and len(value) <= HEADER_LINE_CACHED_VALUE:
                if len(HEADER_LINES) >= HEADER_LINES_MAX:
                    HEADER_LINES.clear()
                HEADER_LINES[item] = line
            head.append(line)
        if self.app_chunked and self.content_length >= 0:
            raise ASGIMessageError("Response sets both Content-Length and Transfer-Encoding")
        self.head = head
        self.started = True
        self.expect_continue = False

    def write_body(self, body: bytes, more_body: bool) -> None:
        if self.head_sent:
            parts = []
        else:
            parts = self.finish_head(len(body), more_body)
        after = self.frame(parts, len(body), more_body)
        if after is not None:
            if body:
                parts.append(body)
            if after is not NO_FRAMING:
                parts += after
        self.head_sent = True
        if parts:
            conn = self.conn
            if len(body) >= ZERO_COPY_BODY:
                # Big bodies are not copied to glue head or chunk framing on:
                # the transport writes the parts together (writev on uvloop).
                if more_body:
                    conn.hold(parts, MAX_HELD_STREAM)
                else:
                    conn.writelines(parts)
            else:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                if not more_body and conn.pipeline:
                    conn.hold([data], MAX_HELD_OUTPUT)
                else:
                    conn.write(data)
        if not more_body:
            self.end_body()

    def frame(self, parts: list[bytes], length: int, more_body: bool) -> list[bytes] | tuple[()] | None:
        """Count ``length`` body bytes; add the framing before them to ``parts`` and return what goes after.

        None when the response has no body (HEAD, 204, 304): the bytes are dropped.
        """
        if self.no_body:
            return None
        self.bytes_sent += length
        if self.chunked:
            after = [b"\r\n"] if length else []
            if length:
                parts.append(b"%x\r\n" % length)
            if not more_body and not self.send_trailers:
                after.append(LAST_CHUNK)
            return after
        if self.content_length >= 0 and self.bytes_sent > self.content_length:
            raise ASGIMessageError("Response body longer than its Content-Length")
        return NO_FRAMING

    def end_body(self) -> None:
        """The app's last body message: the response is complete, or waits for the trailers it promised."""
        if self.trailers:
            self.awaiting_trailers = True
        else:
            self.finish()

    def finish_head(self, length: int, more_body: bool) -> list[bytes]:
        """Complete the response head (framing: length, chunked or close) as a list of pieces."""
        conn = self.conn
        state = conn.state
        status = self.status
        head = self.head
        self.head = None
        if self.custom_server or self.custom_date:
            head[1] = state.default_headers_without(self.custom_server, self.custom_date)
        else:
            head[1] = state.default_headers

        keep_alive = self.keep_alive and not self.app_close and not state.shutting_down and self.body_complete
        if self.is_head or status in NO_BODY_STATUSES:
            self.no_body = True
            if self.content_length < 0 and self.is_head and not more_body and status not in NO_BODY_STATUSES:
                head.append(b"content-length: %d\r\n" % length)
        elif self.content_length >= 0:
            pass
        elif not more_body and not self.app_chunked and not (self.trailers and self.accepts_trailers):
            self.content_length = length
            head.append(b"content-length: %d\r\n" % length)
        elif self.http11:
            self.chunked = True
            head.append(b"transfer-encoding: chunked\r\n")
            # Trailers go out only after a chunked body, to a client that asked for them.
            self.send_trailers = self.trailers and self.accepts_trailers
        else:
            keep_alive = False
        self.keep_alive = keep_alive
        if not keep_alive:
            head.append(b"connection: close\r\n\r\n")
        elif not self.http11:
            head.append(b"connection: keep-alive\r\n\r\n")
        else:
            head.append(b"\r\n")
        return head

    def finish(self) -> None:
        self.complete = True
        conn = self.conn
        self.wake()
        if self.content_length >= 0 and self.bytes_sent < self.content_length and not self.no_body:
            error_logger.error("Response body shorter than its Content-Length")
            self.keep_alive = False
        if conn.state.access_log:
            self.log_access()
        conn.cycle_done(self)

    def log_access(self) -> None:
        log_exchange(self.conn, self.scope, self.status, self.response_headers, self.bytes_sent, self.started_at)

"""The WebSocket connection protocol, and the ASGI WebSocket spec (2.5) on it.

Compiled by Cython like ``http1.py`` (``fastserve._speedups.websocket``, typed
by ``fastserve/_speedups/websocket.pxd``); it runs as it is without a compiler.

The HTTP/1.1 protocol checks the handshake and hands the connection over
(``http1_switch.switch_protocols``); from then on ``WebSocketProtocol``
owns the transport. What differs between the engines is only the reader of
client frames: fastserve's ``websocket_frames.FrameReader`` or, for
``--ws wsproto``, ``websocket_wsproto.WsprotoReader``; both give the same
events, and the frames the server sends are written here for both.

Every limit holds without the app's help: a message's size is checked from
its frame header (``--ws-max-size``), reading pauses while ``--ws-max-queue``
messages wait for the app or while the client does not read what the server
sends (a ping flood buys it nothing), ``send()`` waits while the transport's
buffer is full, a silent peer is closed after ``--ws-ping-timeout``, and a
close handshake waits for the peer's close frame at most ``CLOSE_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from http import HTTPStatus
from time import perf_counter
from typing import Any

from fastserve.access_log import log_access
from fastserve.asgi import (
    body_bytes,
    check_header_value,
    header_key,
    header_pair,
    log_app_failure,
    validate_status,
)
from fastserve.errors import ASGIMessageError, ClientDisconnected
from fastserve.protocols import cycle as app_cycle
from fastserve.protocols import websocket_deflate
from fastserve.protocols.refusals import error_body_size, error_response
from fastserve.protocols.websocket_codec import (
    FrameReader,
    build_frame,
    close_payload,
    connection_protocol,
    frame_header,
)
from fastserve.protocols.websocket_frames import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    CLOSE_SERVICE_RESTART,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    sendable_close_code,
)
from fastserve.protocols.websocket_handshake import Handshake, accept_key

error_logger = logging.getLogger("fastserve.error")

# How long the server waits for the peer's close frame after sending its own.
CLOSE_TIMEOUT = 10.0
# A message this big goes out as header and payload in one writev, not copied into one bytes.
ZERO_COPY_MESSAGE = 16 * 1024
TASK_NAME = "fastserve.websocket"
DENIAL_EXTENSION = "websocket.http.response"

# Where the connection is, for the app.
CONNECTING = 0  # the handshake waits for the app's answer
RESPONDING = 1  # the app denies the handshake with an HTTP response
OPEN = 2
CLOSING = 3  # the server sent its close frame, and waits for the peer's
CLOSED = 4


class WebSocketSettings:
    """What the --ws flags set, for every WebSocket of a server."""

    def __init__(
        self,
        engine: str = "fastserve",
        max_size: int = 16 * 1024 * 1024,
        max_queue: int = 32,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        per_message_deflate: bool = True,
    ) -> None:
        self.engine = engine
        self.max_size = max_size
        self.max_queue = max(1, max_queue)
        self.ping_interval = ping_interval or 0.0
        self.ping_timeout = ping_timeout or 0.0
        self.per_message_deflate = per_message_deflate
        # The compiled WebSocketProtocol when it was built (see websocket_codec).
        self.protocol = connection_protocol()
        # A large payload's buffer kept for reuse by this server's readers (see FrameReader).
        self.spare_payload: list[Any] = [None]

    def reader(self, deflate: websocket_deflate.PerMessageDeflate | None) -> Any:
        if self.engine == "wsproto":
            from fastserve.protocols.websocket_wsproto import WsprotoReader

            return WsprotoReader(self.max_size, deflate)
        return FrameReader(self.max_size, deflate, spare=self.spare_payload)


def websocket_scope(scope: dict[str, Any], handshake: Handshake, tls: dict[str, Any] | None) -> dict[str, Any]:
    """Turn the scope the HTTP/1.1 protocol built for the handshake request into a WebSocket scope."""
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] in ("https", "wss") else "ws"
    scope["subprotocols"] = handshake.subprotocols
    extensions: dict[str, Any] = {DENIAL_EXTENSION: {}}
    if tls is not None:
        extensions["tls"] = tls
    scope["extensions"] = extensions
    return scope


class WebSocketProtocol(app_cycle.AppCycle):
    """One WebSocket connection, from the handshake request to the close (the app call: app_cycle.AppCycle,
    whose epilogue it overrides: a session ends in phases, not with a response)."""

    def __init__(self, state: Any, scope: dict[str, Any], handshake: Handshake, client_label: str) -> None:
        self.state = state
        self.settings: WebSocketSettings = state.websocket
        self.scope = scope
        self.handshake = handshake
        self.client_label = client_label
        self.transport: Any = None
        self.phase = CONNECTING
        self.reader: Any = None
        self.deflate: websocket_deflate.PerMessageDeflate | None = None
        self.deflate_response: bytes | None = None
        if self.settings.per_message_deflate and handshake.extensions:
            self.deflate, self.deflate_response = websocket_deflate.negotiate(handshake.extensions)
        # Messages for the app's receive(), and the disconnect that ends them.
        self.messages: deque[dict[str, Any]] = deque([{"type": "websocket.connect"}])
        self.close_code = 0
        self.close_reason = ""
        self.receive_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.read_paused = False
        self.write_paused = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        # The one deadline that runs (see check_deadline), and a ping's payload while its pong is awaited.
        self.deadline = 0.0
        self.ping_payload: bytes | None = None
        self.status = 0
        self.bytes_sent = 0
        self.started_at = perf_counter()
        self.denial_head: list[bytes] | None = None
        self.denial_chunked = False
        # The Content-Length a denial response's app gave (-1: none, the server frames the body).
        self.denial_length = -1
        # Whether the buffer get_buffer handed out is a large payload's.
        self.reading_payload = False

    # Set up by the HTTP/1.1 protocol ------------------------------------

    def start(self, transport: Any, read_paused: bool, early_bytes: bytes) -> None:
        """Take over the transport (already set to this protocol) and run the app."""
        self.transport = transport
        self.read_paused = read_paused
        self.reader = self.settings.reader(self.deflate)
        self.state.connections.add(self)
        if not self.start_app(False, False, TASK_NAME):
            # --limit-concurrency counts sessions as it counts requests: at the limit, 503.
            self.refuse_handshake(503)
            return
        if early_bytes:
            self.data_received(early_bytes)
        if not self.closed and self.read_paused and len(self.messages) < self.settings.max_queue:
            self.read_paused = False
            transport.resume_reading()
        if self.state.shutting_down:
            self.shutdown()

    # asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed or self.phase == CLOSED:
            return
        try:
            events = self.reader.feed(data)
        except Exception:  # a fault of ours, not the client's
            self.reader_failed()
            return
        self.take_events(events)

    def reader_failed(self) -> None:
        error_logger.exception("Exception while reading WebSocket frames from %s", self.client_label)
        self.fail(CLOSE_INTERNAL_ERROR, "")

    # asyncio.BufferedProtocol, which uvloop prefers: small reads go to the
    # server's shared receive buffer, and the rest of a large frame's payload
    # straight into the buffer the message is made of (see FrameReader.payload_view).

    def get_buffer(self, sizehint: int) -> Any:
        view = self.reader.payload_view()
        self.reading_payload = view is not None
        return self.state.receive_buffer if view is None else view

    def buffer_updated(self, nbytes: int) -> None:
        if not self.reading_payload:
            self.data_received(self.state.receive_buffer[:nbytes])
            return
        if self.closed or self.phase == CLOSED:
            return
        try:
            events = self.reader.payload_received(nbytes)
        except Exception:
            self.reader_failed()
            return
        self.take_events(events)

    def take_events(self, events: list[Any]) -> None:
        """Act on what the client's frames said."""
        for event in events:
            kind = event[0]
            if kind == "text":
                self.queue({"type": "websocket.receive", "text": event[1]})
            elif kind == "bytes":
                self.queue({"type": "websocket.receive", "bytes": event[1]})
            elif kind == "ping":
                if self.phase == OPEN:
                    self.write_frame(OP_PONG, event[1])
            elif kind == "pong":
                if self.ping_payload is not None and event[1] == self.ping_payload:
                    self.ping_payload = None
                    self.deadline = self.state.now + self.settings.ping_interval if self.settings.ping_interval else 0.0
            elif kind == "close":
                self.peer_closed(event[1], event[2])
            else:  # "error": the client broke the protocol
                error_logger.debug("WebSocket protocol error from %s: %s", self.client_label, event[2])
                self.fail(event[1], event[2])
        if self.write_paused and not self.closed:
            # The client does not read what it makes the server send (pongs, say): read no more from it.
            self.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # (a WebSocket ends with a close frame; an end of input is the peer gone)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if not self.close_code:
            self.close_code = CLOSE_ABNORMAL
        if self.phase != CLOSED:
            self.phase = CLOSED
        self.wake_receive()
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        self.maybe_resume_reading()

    # Flow control --------------------------------------------------------

    def queue(self, message: dict[str, Any]) -> None:
        if self.phase >= CLOSING:
            return  # (sent before the client saw the server's close frame: nobody reads it)
        self.messages.append(message)
        self.wake_receive()
        if len(self.messages) >= self.settings.max_queue:
            self.pause_reading()

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def maybe_resume_reading(self) -> None:
        if (
            self.read_paused
            and not self.closed
            and not self.write_paused
            and len(self.messages) < self.settings.max_queue
        ):
            self.read_paused = False
            self.transport.resume_reading()

    def wake_receive(self) -> None:
        waiter = self.receive_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The close handshake --------------------------------------------------

    def peer_closed(self, code: int, reason: str) -> None:
        """The client's close frame: answer it (unless it answers ours), then close the connection."""
        if self.phase == OPEN:
            # Echo the code (RFC 6455 5.5.1); a close without one is answered without one.
            self.write(build_frame(OP_CLOSE, b"" if code == CLOSE_NO_STATUS else close_payload(code)))
        if not self.close_code:
            self.close_code, self.close_reason = code, reason
        self.finish(code, reason)

    def fail(self, code: int, reason: str) -> None:
        """The client broke the protocol (or went silent): a close frame with ``code``, and the end.

        What the client sends after is read and dropped: closing a socket
        with unread bytes would reset the connection, and the client could
        lose the close frame. The end of output follows the close frame where
        the transport can say so; the connection closes when the client's
        side ends too, or after CLOSE_TIMEOUT.
        """
        if self.phase != OPEN:
            self.finish(code, reason)
            return
        self.write(build_frame(OP_CLOSE, close_payload(code)))
        if not self.close_code:
            self.close_code, self.close_reason = code, reason
        self.phase = CLOSED
        self.wake_receive()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.deadline = self.state.now + CLOSE_TIMEOUT
        self.maybe_resume_reading()

    def finish(self, code: int, reason: str) -> None:
        """The WebSocket is over: the app hears of it (after the messages it has not read), the TCP closes."""
        if not self.close_code:
            self.close_code, self.close_reason = code, reason
        self.phase = CLOSED
        self.wake_receive()
        self.close()

    def start_closing(self, code: int, reason: str) -> None:
        """Send the server's close frame; the peer's answer (or CLOSE_TIMEOUT) ends the connection."""
        self.write(build_frame(OP_CLOSE, close_payload(code, reason)))
        self.phase = CLOSING
        self.deadline = self.state.now + CLOSE_TIMEOUT
        if not self.close_code:
            self.close_code, self.close_reason = code, reason
        # Frames the client sent before it saw ours are read (and dropped) until its close frame comes.
        self.maybe_resume_reading()

    def check_deadline(self, now: float) -> None:
        """Called by the server's once-a-second sweep: pings, their timeout, and the close handshake's."""
        if not self.deadline or now < self.deadline:
            return
        if self.phase == OPEN:
            if self.ping_payload is not None:
                error_logger.debug("WebSocket ping timeout from %s", self.client_label)
                self.fail(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
                return
            self.ping_payload = b"%08x" % (int(now * 1000) & 0xFFFFFFFF)
            self.write_frame(OP_PING, self.ping_payload)
            self.deadline = now + (self.settings.ping_timeout or self.settings.ping_interval)
            if not self.settings.ping_timeout:
                self.ping_payload = None
        elif self.phase != CONNECTING:
            self.deadline = 0.0
            self.close()

    def shutdown(self) -> None:
        """Graceful shutdown: an open WebSocket closes with 1012, a handshake the app has not answered gets 500."""
        if self.phase == CONNECTING:
            self.refuse_handshake(500)
        elif self.phase == OPEN:
            self.start_closing(CLOSE_SERVICE_RESTART, "")
            self.wake_receive()
        elif self.phase == CLOSED:
            self.close()  # (lingering after a failure: see fail)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.phase = CLOSED
            self.transport.close()
            self.wake_receive()

    # Output ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def write_frame(self, opcode: int, payload: bytes) -> None:
        self.write(build_frame(opcode, payload))

    async def drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.state.loop.create_future()
        await waiter

    # The ASGI application --------------------------------------------------

    def app_raised(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.app_failed("cancelled at shutdown")
            return
        log_app_failure(exc, self.closed, self.scope["path"])
        self.app_failed("")

    def app_returned(self) -> None:
        if self.phase == CONNECTING:
            error_logger.error("ASGI callable returned without accepting or refusing the WebSocket")
            self.refuse_handshake(500)
        elif self.phase == RESPONDING:
            error_logger.error("ASGI callable returned without completing the WebSocket denial response")
            self.close()
        elif self.phase == OPEN:
            self.start_closing(CLOSE_NORMAL, "")

    def app_failed(self, reason: str) -> None:
        """The app raised: 500 before the handshake is answered, close 1011 after."""
        if self.phase == CONNECTING:
            self.refuse_handshake(500)
        elif self.phase == OPEN:
            self.start_closing(CLOSE_INTERNAL_ERROR, reason)
        elif self.phase == RESPONDING:
            self.close()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.messages:
                message = self.messages.popleft()
                if self.read_paused:
                    self.maybe_resume_reading()
                return message
            if self.phase >= CLOSING:
                return {"type": "websocket.disconnect", "code": self.close_code, "reason": self.close_reason}
            waiter = self.receive_waiter = self.state.loop.create_future()
            try:
                await waiter
            finally:
                self.receive_waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        message_type = message["type"]
        if self.phase == CONNECTING:
            if self.closed:
                raise ClientDisconnected("the client disconnected")
            if message_type == "websocket.accept":
                self.accept(message)
            elif message_type == "websocket.close":
                self.refuse_handshake(403)
            elif message_type == "websocket.http.response.start":
                self.start_denial(message)
            else:
                raise ASGIMessageError(f"Expected 'websocket.accept' or 'websocket.close', got {message_type!r}")
            return
        if self.phase == RESPONDING:
            if message_type != "websocket.http.response.body":
                raise ASGIMessageError(f"Expected 'websocket.http.response.body', got {message_type!r}")
            self.denial_body(message)
            return
        if self.phase != OPEN:
            raise ClientDisconnected("the WebSocket is closed")
        if message_type == "websocket.send":
            if self.write_paused:
                await self.drain()
                if self.phase != OPEN:
                    raise ClientDisconnected("the WebSocket is closed")
            self.send_message(message)
        elif message_type == "websocket.close":
            code = message["code"] if "code" in message and message["code"] is not None else CLOSE_NORMAL
            reason = message["reason"] if "reason" in message and message["reason"] is not None else ""
            if type(code) is not int or not sendable_close_code(code) or type(reason) is not str:
                raise ASGIMessageError(f"Invalid 'websocket.close' code {code!r} or reason {reason!r}")
            self.start_closing(code, reason)
        else:
            raise ASGIMessageError(f"Expected 'websocket.send' or 'websocket.close', got {message_type!r}")

    def send_message(self, message: dict[str, Any]) -> None:
        text = message["text"] if "text" in message else None
        data = message["bytes"] if "bytes" in message else None
        if text is not None and data is None and type(text) is str:
            opcode, payload = OP_TEXT, text.encode("utf-8")
        elif data is not None and text is None:
            opcode, payload = OP_BINARY, body_bytes(data)
        else:
            raise ASGIMessageError("'websocket.send' needs exactly one of 'text' (str) and 'bytes'")
        deflate = self.deflate
        if deflate is not None:
            payload = deflate.deflate(payload)
        header = frame_header(opcode, len(payload), True, deflate is not None)
        if self.closed:
            return
        if len(payload) >= ZERO_COPY_MESSAGE:
            self.transport.writelines([header, payload])
        else:
            self.transport.write(header + payload)

    # The handshake's answer -------------------------------------------------

    def accept(self, message: dict[str, Any]) -> None:
        subprotocol = message["subprotocol"] if "subprotocol" in message else None
        if subprotocol is not None and type(subprotocol) is not str:
            raise ASGIMessageError(f"Invalid 'websocket.accept' subprotocol {subprotocol!r}")
        lines = [
            b"HTTP/1.1 101 Switching Protocols\r\n",
            self.state.default_headers,
            b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: %s\r\n"
            % accept_key(self.handshake.key),
        ]
        if subprotocol:
            lines.append(b"sec-websocket-protocol: %s\r\n" % subprotocol.encode("latin-1"))
        if self.deflate_response is not None:
            lines.append(b"sec-websocket-extensions: %s\r\n" % self.deflate_response)
        lines += self.header_lines(message)
        lines.append(b"\r\n")
        self.write(b"".join(lines))
        self.phase = OPEN
        self.status = 101
        self.log_access()
        self.deadline = self.state.now + self.settings.ping_interval if self.settings.ping_interval else 0.0

    def header_lines(self, message: dict[str, Any]) -> list[bytes]:
        lines = []
        for item in message["headers"] if "headers" in message else ():
            name, value = header_pair(item)
            header_key(name)
            check_header_value(name, value)
            lines.append(b"%s: %s\r\n" % (name, value))
        return lines

    def refuse_handshake(self, status: int) -> None:
        """Answer the handshake with a short HTTP error (403 when the app closed before accepting)."""
        self.write(error_response(status, self.state.default_headers))
        self.status = status
        self.bytes_sent = error_body_size(status)
        self.log_access()
        self.finish(CLOSE_ABNORMAL, "")

    def start_denial(self, message: dict[str, Any]) -> None:
        """``websocket.http.response.start``: the app answers the handshake with an HTTP response of its own.

        The body's framing is one field: the app's Content-Length if it gave one
        (the body then goes as it comes), else the server's (Content-Length, or
        chunked when the body comes in parts). An app's Transfer-Encoding is
        dropped: the server frames the body.
        """
        status = message["status"] if "status" in message else None
        validate_status(status)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _phrase(status)), self.state.default_headers]
        for item in message["headers"] if "headers" in message else ():
            name, value = header_pair(item)
            key = header_key(name)
            check_header_value(name, value)
            if key == b"content-length":
                if not value.isdigit() or self.denial_length >= 0:
                    raise ASGIMessageError(f"Invalid or repeated denial response Content-Length {value!r}")
                self.denial_length = int(value)
            elif key == b"transfer-encoding":
                continue
            head.append(b"%s: %s\r\n" % (name, value))
        self.status = status
        self.phase = RESPONDING
        self.denial_head = head

    def denial_body(self, message: dict[str, Any]) -> None:
        body = body_bytes(message["body"]) if "body" in message else b""
        more_body = "more_body" in message and bool(message["more_body"])
        head = self.denial_head
        parts = []
        if head is not None:
            self.denial_head = None
            if self.denial_length < 0:  # (else the app's own Content-Length frames it)
                self.denial_chunked = more_body
                head.append(b"transfer-encoding: chunked\r\n" if more_body else b"content-length: %d\r\n" % len(body))
            head.append(b"connection: close\r\n\r\n")
            parts += head
        self.bytes_sent += len(body)
        if self.denial_chunked:
            if body:
                parts += (b"%x\r\n" % len(body), body, b"\r\n")
            if not more_body:
                parts.append(b"0\r\n\r\n")
        else:
            parts.append(body)
        self.write(b"".join(parts))
        if not more_body:
            self.log_access()
            self.finish(CLOSE_ABNORMAL, "")

    def log_access(self) -> None:
        """The session's one access line, when the handshake is answered (101, a refusal or a denial)."""
        state = self.state
        if state.access_log:
            log_access(
                state.access_format, self.client_label, self.scope, self.status, None, self.bytes_sent, self.started_at
            )


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""

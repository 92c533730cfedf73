"""h11 behind httptools' parser interface: the pure-Python request parser.

``H11Parser`` turns h11 events into the callbacks ``HTTP1Protocol`` expects from
``httptools.HttpRequestParser``, so the one protocol serves both parsers. h11 is
more lenient than llhttp in a few places (bare LF line ends, obs-fold); those
are refused here so both parsers accept the same requests.

h11 also serves the httptools path where llhttp cannot: llhttp knows a fixed
list of methods, and RFC 9110 allows any token. ``ExtensionMethodParser`` parses
one such request and hands the connection back; ``request_start`` finds where
that request begins in bytes llhttp has already been through.
"""

from __future__ import annotations

import re
from typing import Any

import h11

from fastserve.errors import RequestError

# What llhttp accepts as a request target: origin-form, "*", absolute-form, or
# authority-form (CONNECT); printable ASCII only.
_TARGET = re.compile(rb"(/|\*\Z|[A-Za-z][A-Za-z0-9+.-]*://|[^/?#]+:[0-9]+\Z)[\x21-\x7e]*\Z")
# Control bytes h11 lets through in header values and llhttp refuses.
_VALUE_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A line end without CR, a CR without LF, or a header line folded onto the next.
_LAX_LINE = re.compile(rb"(?<!\r)\n|\r(?!\n)|\n[ \t]")
_CONTENT_LENGTH_VALUE = re.compile(rb"\r\ncontent-length[ \t]*:([^\r]*)", re.IGNORECASE)
# The largest chunk size llhttp accepts.
MAX_CHUNK_SIZE = 2**64 - 1
# Where h11 ends a head: an empty line, with or without its CR.
_HEAD_END = re.compile(rb"\n\r?\n")


class H11Parser:
    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._max_head_size = protocol.state.max_head_size
        self._connection = self._new_connection()
        self._begun = False
        self._head = bytearray()
        self._http_version = "1.1"
        self._method = b""

    def _new_connection(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head_size)

    def get_http_version(self) -> str:
        return self._http_version

    def get_method(self) -> bytes:
        return self._method

    def feed_data(self, data: bytes | memoryview) -> None:
        self._receive(bytes(data))  # (a view of the server's receive buffer is reused by the next read)

    def _receive(self, data: bytes, one_request: bool = False) -> bytes | None:
        """Parse ``data``; with ``one_request``, stop after one request and return the bytes after it."""
        protocol = self._protocol
        while data:
            connection = self._connection
            if connection.their_state is h11.IDLE:
                if not self._head:
                    # Empty lines before a request line are ignored (RFC 9112 2.2).
                    data = data.lstrip(b"\r\n")
                    if not data:
                        return None
                if not self._begun:
                    self._begun = True
                    protocol.on_message_begin()
                self._check_head(data)
            connection.receive_data(bytes(data))
            data = b""
            while True:
                try:
                    event = connection.next_event()
                except h11.RemoteProtocolError as exc:
                    raise RequestError(_status_for(exc), str(exc)) from None
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    _check_chunk_size(connection)
                    break
                event_type = type(event)
                if event_type is h11.Request:
                    self._http_version = event.http_version.decode("ascii")
                    self._method = bytes(event.method)
                    target = bytes(event.target)
                    if _TARGET.match(target) is None:
                        raise RequestError(400, "Invalid request target")
                    protocol.on_url(target)
                    for name, value in event.headers.raw_items():
                        if _VALUE_CONTROL.search(value):
                            raise RequestError(400, "Control character in a header value")
                        protocol.on_header(bytes(name), bytes(value))
                    protocol.on_headers_complete()
                elif event_type is h11.Data:
                    if event.chunk_start:
                        _check_chunk_size(connection)
                    protocol.on_body(bytes(event.data))
                elif event_type is h11.EndOfMessage:
                    protocol.on_message_complete()
                    # One h11 connection per request: what follows belongs to the next.
                    data = bytes(connection.trailing_data[0])
                    self._connection = self._new_connection()
                    self._begun = False
                    self._head.clear()
                    if one_request:
                        return data
                    break
                else:  # ConnectionClosed
                    return None
        return None

    def _check_head(self, data: bytes) -> None:
        """Collect the head until it is complete, then check what h11 lets through."""
        head = self._head
        search_from = max(0, len(head) - 3)
        head += data
        end = _HEAD_END.search(head, search_from)
        if end is None:
            return
        text = bytes(head[: end.end()])
        head.clear()
        if text.startswith(b"PRI * HTTP/2.0\r\n"):
            raise RequestError(400, "HTTP/2 connection preface on an HTTP/1.1 connection")
        if _LAX_LINE.search(text):
            raise RequestError(400, "Invalid line ending or obs-fold in the request head")
        # h11 merges repeated or listed identical Content-Length values
        # ("3, 3"); llhttp and the protocol refuse them.
        lengths = _CONTENT_LENGTH_VALUE.findall(text)
        if len(lengths) > 1 or (lengths and not lengths[0].strip(b" \t").isdigit()):
            raise RequestError(400, "Repeated or invalid Content-Length")


class ExtensionMethodParser(H11Parser):
    """One request whose method llhttp does not know; then llhttp has the connection again."""

    def feed_data(self, data: bytes | memoryview) -> None:
        rest = self.receive(bytes(data))
        if rest is not None:
            self._protocol.resume_fast_parsing(rest)

    def receive(self, data: bytes) -> bytes | None:
        """Parse ``data``; once the request is complete, the bytes that follow it."""
        return self._receive(data, one_request=True)


def request_start(data: bytes, skip: int) -> int | None:
    """Where request number ``skip`` (counted from 0) begins in ``data``.

    ``data`` begins where a request begins, and the ``skip`` requests before the
    one sought were complete and accepted by llhttp; h11 finds where each ends.
    None if h11 cannot tell (it refuses one of them).
    """
    offset = 0
    for _ in range(skip):
        offset += len(data) - offset - len(data[offset:].lstrip(b"\r\n"))
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(data) + 1)
        connection.receive_data(data[offset:])
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError:
                return None
            if type(event) is h11.EndOfMessage:
                break
            if event is h11.NEED_DATA or event is h11.PAUSED or type(event) is h11.ConnectionClosed:
                return None
        offset = len(data) - len(connection.trailing_data[0])
    return offset


def _check_chunk_size(connection: h11.Connection) -> None:
    """Refuse a chunk size above 64 bits, as llhttp does (h11 would wait for the data).

    h11 keeps the size it read in its reader; it has no public way to ask.
    """
    if getattr(getattr(connection, "_reader", None), "_bytes_in_chunk", 0) > MAX_CHUNK_SIZE:
        raise RequestError(400, "Chunk size overflow")


def _status_for(exc: h11.RemoteProtocolError) -> int:
    hint = exc.error_status_hint
    return hint if hint in (400, 414, 431, 505) else 400

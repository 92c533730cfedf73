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
from h11._readers import ChunkedReader  # (h11 has no public hook for chunk lines; see StrictChunkedReader)

from fastserve.asgi import is_token, readable_reason
from fastserve.errors import PipelineFull, ProtocolSwitch, RequestError

# What llhttp accepts as a request target, printable ASCII only: origin-form,
# "*", absolute-form; and for CONNECT an authority too. Where a host is read
# (up to a "/" or "?"), llhttp refuses a few more bytes.
_AUTHORITY = rb'[^"#<>\\^`{|}/?]*(?:[/?][\x21-\x7e]*)?\Z'
_TARGET = re.compile(rb"(?:[/*][\x21-\x7e]*\Z|[A-Za-z]+://(?=[\x21-\x7e]*\Z)%s)" % _AUTHORITY)
_CONNECT_TARGET = re.compile(rb"(?=[\x21-\x7e]+\Z)(?:/[\x21-\x7e]*\Z|%s)" % _AUTHORITY)
# A request line as far as llhttp reads before it looks at the version; the
# versions it reads on with (others get 505 at once, before any header).
_REQUEST_LINE = re.compile(rb"([^ \r\n]+) ([^ \r\n]+) HTTP/([0-9]\.[0-9])")
_LLHTTP_VERSIONS = {b"0.9", b"1.0", b"1.1", b"2.0"}
# The start of a header line, as far as it has come (a name before any colon).
_FIELD_START = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?::[^\x00-\x08\x0a-\x1f\x7f]*)?)?\Z")
# A header line llhttp accepts: a token, a colon, the value (leading OWS dropped).
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)\Z")
# Control bytes h11 lets through in header values and llhttp refuses.
_VALUE_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A line end without CR, a CR without LF, or a header line folded onto the next.
_LAX_LINE = re.compile(rb"(?<!\r)\n|\r(?!\n)|\n[ \t]")
_CONTENT_LENGTH_VALUE = re.compile(rb"\r\ncontent-length[ \t]*:([^\r]*)", re.IGNORECASE)
_TRANSFER_ENCODING_VALUE = re.compile(rb"\r\ntransfer-encoding:([^\r]*)", re.IGNORECASE)
# The largest chunk size llhttp accepts, and the chunk-size lines it accepts:
# hex digits, then extensions with no whitespace (";name", ";name=token",
# ';name="quoted"').
MAX_CHUNK_SIZE = 2**64 - 1
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]*")
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_EXTENSION = rb"(?:;%s*(?:=(?:%s*|%s))?)" % (_TCHAR, _TCHAR, _QUOTED)
# (llhttp takes empty extension names, but not one that ends the line.)
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)%s*(?<!;)\r\n\Z" % _EXTENSION)
# What may have come of a chunk-size line whose end has not: complete
# extensions, then part of a quoted value or the CR.
_PARTIAL_QUOTED = rb'(?:;%s*="(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*\\?)' % _TCHAR
_CHUNK_SIZE_LINE_START = re.compile(rb"[0-9A-Fa-f]+%s*(?:%s|(?<!;)\r)?\Z" % (_EXTENSION, _PARTIAL_QUOTED))
_SPACES = re.compile(rb"  +")
# The first bytes of a TLS ClientHello (a handshake record, TLS 1.x).
TLS_HANDSHAKE = b"\x16\x03"
# A method as far as it has come: token characters only.
_TOKEN_SO_FAR = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
# Where h11 ends a head: an empty line, with or without its CR.
_HEAD_END = re.compile(rb"\n\r?\n")
# Empty lines before a request, and a header field that gives a request a body.
_EMPTY_LINES = re.compile(rb"[\r\n]*")
_BODY_FIELD = re.compile(rb"\r\n(?:content-length|transfer-encoding)[ \t]*:", re.IGNORECASE)


class H11Parser:
    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._max_head_size = protocol.state.max_head_size
        self._connection = self._new_connection()
        self._begun = False
        self._head = bytearray()
        self._http_version = "1.1"
        self._method = b""
        self._stopped = False
        # A complete head not yet turned into a Request event: if h11 refuses
        # it, the protocol says with which status (see _refuse).
        self._head_text: bytes | None = None
        self._request_head = b""

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
        while data and not self._stopped:
            connection = self._connection
            if connection.their_state is h11.IDLE:
                if not self._head:
                    # Empty lines before a request line are ignored (RFC 9112 2.2).
                    data = data.lstrip(b"\r\n")
                    if not data:
                        return None
                if not self._begun:
                    try:
                        protocol.on_message_begin()
                    except PipelineFull as stop:
                        stop.rest = data  # this request's bytes on, for the protocol to park
                        raise
                    self._begun = True
                head = self._complete_head(data)
                if head is None:
                    return None  # h11 gets the head once it is complete
                data = head
            connection.receive_data(data)
            data = b""
            while True:
                try:
                    event = connection.next_event()
                except h11.RemoteProtocolError as exc:
                    self._refuse(exc)
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                event_type = type(event)
                if event_type is h11.Request:
                    self._request_head, self._head_text = self._head_text or b"", None
                    self._http_version = event.http_version.decode("ascii")
                    self._method = bytes(event.method)
                    target = bytes(event.target)
                    if _valid_target(self._method, target) is None:
                        raise RequestError(400, "Invalid request target")
                    protocol.on_url(target)
                    raw_transfer_encodings = None
                    for name, value in event.headers.raw_items():
                        if _VALUE_CONTROL.search(value):
                            raise RequestError(400, "Control character in a header value")
                        if name.lower() == b"transfer-encoding":
                            # h11 lowercases this value and drops the whitespace after it;
                            # the protocol gets it as sent.
                            if raw_transfer_encodings is None:
                                raw_transfer_encodings = _TRANSFER_ENCODING_VALUE.findall(self._request_head)
                            value = raw_transfer_encodings.pop(0).lstrip(b" \t")
                        protocol.on_header(bytes(name), bytes(value))
                    protocol.on_headers_complete()
                    if type(connection._reader) is ChunkedReader:
                        connection._reader = StrictChunkedReader()
                    if self._method == b"CONNECT" or (protocol.upgrade and _names(event, b"upgrade")):
                        # As llhttp does: the head is the whole request, and the
                        # bytes after it belong to the protocol asked for.
                        protocol.on_message_complete()
                        self._stopped = True
                        raise ProtocolSwitch(bytes(connection.trailing_data[0]))
                elif event_type is h11.Data:
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

    def _complete_head(self, data: bytes) -> bytes | None:
        """Collect the head; once complete, check what h11 lets through and return it with what follows."""
        head = self._head
        search_from = max(0, len(head) - 3)
        head += data
        end = _HEAD_END.search(head, search_from)
        if end is None:
            # A method that is not a token is refused now, as llhttp does, not once a head that may never
            # end has come (a TLS ClientHello on the plain port would wait for the header timeout).
            space = head.find(b" ")
            if _TOKEN_SO_FAR.fullmatch(head if space < 0 else head[:space]) is None:
                if head.startswith(TLS_HANDSHAKE):
                    raise RequestError(400, "a TLS handshake on a plain HTTP port (https:// to a server without TLS)")
                raise RequestError(400, "Invalid method")
            return None
        text = bytes(head[: end.end()])
        rest = bytes(head[end.end() :])
        head.clear()
        # llhttp takes several spaces between the parts of the request line; h11 one.
        text = _SPACES.sub(b" ", text[: text.find(b"\n")]) + text[text.find(b"\n") :]
        line = _REQUEST_LINE.match(text)
        if (
            line is not None
            and line.group(3) not in _LLHTTP_VERSIONS
            and is_token(line.group(1))
            and _valid_target(line.group(1), line.group(2))
            and len(line.group(2)) <= self._protocol.state.limit_request_line
        ):
            raise RequestError(505, "HTTP version not supported")
        if text.startswith(b"PRI "):
            # llhttp refuses PRI at the request line: the HTTP/2 preface, or a misuse of it.
            raise RequestError(400, "HTTP/2 connection preface on an HTTP/1.1 connection")
        problem = None
        if _LAX_LINE.search(text):
            problem = RequestError(400, "Invalid line ending or obs-fold in the request head")
        else:
            # h11 merges repeated or listed identical Content-Length values
            # ("3, 3"); llhttp and the protocol refuse them.
            lengths = _CONTENT_LENGTH_VALUE.findall(text)
            if len(lengths) > 1 or (lengths and not lengths[0].strip(b" \t").isdigit()):
                problem = RequestError(400, "Repeated or invalid Content-Length")
        if problem is not None:
            self._walk_head(text)  # an earlier line may be refused first, with another status
            raise problem
        self._head_text = text
        return text + rest

    def _refuse(self, exc: h11.RemoteProtocolError) -> None:
        """Raise the RequestError for what h11 refused.

        h11 checks some things about a head (Host, Content-Length) before the
        protocol sees it, where llhttp leaves them to the protocol, which checks
        them in stream order with its own statuses. So the head is walked
        through the protocol first, and h11's own status is the last resort.
        """
        text, self._head_text = self._head_text, None
        if text is not None:
            self._walk_head(text)
        raise RequestError(_status_for(exc), readable_reason(str(exc))) from None

    def _walk_head(self, text: bytes) -> None:
        """Hand a complete head to the protocol's checks line by line, as llhttp would."""
        lines = text.split(b"\r\n")
        request_line = _REQUEST_LINE.match(lines[0])
        if request_line is None or request_line.end() != len(lines[0]):
            return
        method, target, version = request_line.groups()
        if not is_token(method) or _valid_target(method, target) is None or version not in _LLHTTP_VERSIONS:
            return
        protocol = self._protocol
        protocol.on_url(target)
        for line in lines[1:]:
            if not line:
                break
            header = _HEADER_LINE.match(line)
            if header is None:
                return
            protocol.on_header(header.group(1), header.group(2))
        protocol.check_head(method, version.decode("ascii"))


class ExtensionMethodParser(H11Parser):
    """One request whose method llhttp does not know; then llhttp has the connection again."""

    def feed_data(self, data: bytes | memoryview) -> None:
        rest = self.receive(bytes(data))
        if rest is not None:
            self._protocol.resume_fast_parsing(rest)

    def receive(self, data: bytes) -> bytes | None:
        """Parse ``data``; once the request is complete, the bytes that follow it."""
        return self._receive(data, one_request=True)


def request_start(data: bytes, skip: int, state: Any) -> int | None:
    """Where request number ``skip`` (counted from 0) begins in ``data``.

    ``data`` begins where a request begins, and the ``skip`` requests before the
    one sought were complete and accepted by llhttp; an H11Parser reads over
    each to find where it ends. None if it cannot (it refuses one of them).
    """
    position = 0
    for _ in range(skip):
        end = _bodiless_request_end(data, position)
        if end is not None:
            position = end
            continue
        try:
            rest = H11Parser(_RequestSkipper(state))._receive(data[position:], one_request=True)
        except RequestError:
            return None
        if rest is None:
            return None
        position = len(data) - len(rest)
    return position


def _bodiless_request_end(data: bytes, position: int) -> int | None:
    """Where a request that llhttp accepted, beginning at ``position``, ends if it has no body; else None.

    The common case of a pipeline (GETs) without h11: the head ends at the
    first empty line after any empty lines before it, and a request head
    without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3).
    """
    start = _EMPTY_LINES.match(data, position).end()
    end = data.find(b"\r\n\r\n", start)
    if end < 0 or _BODY_FIELD.search(data, start, end + 2):
        return None
    return end + 4


class _RequestSkipper:
    """The protocol side of an H11Parser that only reads over requests (see request_start)."""

    upgrade = False

    def __init__(self, state: Any) -> None:
        self.state = state

    def on_message_begin(self) -> None:
        pass

    def on_url(self, url: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_headers_complete(self) -> None:
        pass

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        pass

    def check_head(self, method: bytes, version: str) -> str:
        return ""


def _names(event: h11.Request, name: bytes) -> bool:
    return any(header == name for header, _ in event.headers)


def _check_trailer_section(start: bytes) -> None:
    """What llhttp refuses in a trailer section as soon as it comes, where h11 waits for its end.

    A bare CR or LF (which h11 would take), a line that is not a field, a
    framing field; on the line still arriving, a byte that cannot be there.
    """
    if start.startswith(b"\r\n"):
        return  # no trailer fields
    end = start.find(b"\r\n\r\n")
    section = start[: end + 2] if end >= 0 else start
    if _LAX_LINE.search(section.removesuffix(b"\r")):  # (a CR at the end may wait for its LF)
        raise RequestError(400, "Invalid line ending or obs-fold in the trailer section")
    *lines, arriving = section.split(b"\r\n")
    if arriving.endswith(b"\r"):
        if arriving != b"\r":  # (just a CR: the empty line that ends the section)
            lines.append(arriving[:-1])  # a field line as far as its CR: complete
        arriving = b""
    for line in lines:
        field = _HEADER_LINE.match(line)
        if field is None or field.group(1).lower() in (b"transfer-encoding", b"content-length"):
            raise RequestError(400, "Invalid field in the trailer section")
    name, colon, value = arriving.partition(b":")
    if _FIELD_START.match(arriving) is None or (
        colon and (name.lower() == b"content-length" or (name.lower() == b"transfer-encoding" and value.strip(b" \t")))
    ):
        raise RequestError(400, "Invalid field in the trailer section")


def _check_partial_size_line(start: bytes) -> None:
    """What llhttp refuses in a chunk-size line before its end: a byte that cannot be there, a size past 64 bits."""
    if not start:
        return
    if _CHUNK_SIZE_LINE_START.match(start) is None:
        raise RequestError(400, "Invalid chunk size line")
    if int(start[: _HEX_DIGITS.match(start).end()], 16) > MAX_CHUNK_SIZE:
        raise RequestError(400, "Chunk size overflow")


def _valid_target(method: bytes, target: bytes) -> re.Match[bytes] | None:
    return (_CONNECT_TARGET if method == b"CONNECT" else _TARGET).match(target)


class StrictChunkedReader(ChunkedReader):
    """h11's reader of chunked bodies, with llhttp's rules for the chunk-size line.

    h11 lets whitespace in around chunk extensions and waits for the data of a
    chunk larger than 64 bits; llhttp refuses both, and takes any number of
    leading zeros where h11 stops at 20 digits. The line is read here, and h11
    reads the rest (data, CRLF, trailer fields).
    """

    def __call__(self, buffer: Any) -> Any:
        if self._bytes_to_discard:
            # The CRLF after chunk data is taken here: h11 would read on into the next line.
            end = buffer.maybe_extract_at_most(len(self._bytes_to_discard))
            if end is None:
                return None
            if end != self._bytes_to_discard[: len(end)]:
                raise RequestError(400, "Chunk data not followed by CRLF")
            self._bytes_to_discard = self._bytes_to_discard[len(end) :]
            if self._bytes_to_discard:
                return None
        if self._bytes_in_chunk == 0 and not self._reading_trailer:
            line = buffer.maybe_extract_next_line()
            if line is None:
                _check_partial_size_line(bytes(buffer))
                return None
            size_line = _CHUNK_SIZE_LINE.match(line)
            if size_line is None:
                raise RequestError(400, "Invalid chunk size line")
            size = int(size_line.group(1), 16)
            if size > MAX_CHUNK_SIZE:
                raise RequestError(400, "Chunk size overflow")
            if size == 0:
                self._reading_trailer = True
            else:
                self._bytes_in_chunk = size
        if self._reading_trailer:
            _check_trailer_section(bytes(buffer))
        return super().__call__(buffer)


def _status_for(exc: h11.RemoteProtocolError) -> int:
    hint = exc.error_status_hint
    return hint if hint in (400, 414, 431, 505) else 400

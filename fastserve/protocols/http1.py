"""The HTTP/1.1 connection protocol: one behaviour for every parser.

This file is both the readable reference of fastserve's HTTP/1.1 behaviour and
the source of the compiled hot path: ``setup.py`` compiles it with Cython into
``fastserve._speedups.http1``, where ``fastserve/_speedups/http1.pxd`` turns the
classes into typed ``cdef`` classes. Without a compiler it runs as it is.

The parser is pluggable and speaks httptools' callback interface
(``on_message_begin``, ``on_url``, ``on_header``, ``on_headers_complete``,
``on_body``, ``on_message_complete``): ``httptools.HttpRequestParser`` directly,
or ``fastserve.protocols.h11_parser.H11Parser``. Every rule that is not pure
syntax (framing conflicts, limits, versions, keep-alive) is enforced here, so
both parsers are held to it.
"""

import base64
import logging
import os
import re
from http import HTTPStatus
from time import perf_counter

import h11

from fastserve.access_log import UNPARSED_SCOPE, log_access, log_exchange
from fastserve.asgi import (
    HEADER_KEYS,
    HEADER_VALUE_FORBIDDEN,
    body_bytes,
    check_header_value,
    decode_path,
    early_hint_line,
    error_body_size,
    error_response,
    escape_for_log,
    header_key,
    header_pair,
    is_token,
    request_header_key,
    split_target,
    trailer_line,
    validate_status,
)
from fastserve.errors import ASGIMessageError, ClientDisconnected, PipelineFull, ProtocolSwitch, RequestError
from fastserve.protocols import cycle as app_cycle
from fastserve.protocols.cycle import ASGI_VERSION, NO_BODY_STATUSES, RESPONSE_EXTENSIONS, TASK_NAME
from fastserve.protocols.h11_parser import ExtensionMethodParser, H11Parser, request_start
from fastserve.protocols.lingering import end_output
from fastserve.protocols.websocket import websocket_scope
from fastserve.protocols.websocket_handshake import HandshakeError, check_handshake, names_token, names_websocket
from fastserve.proxy import FORWARDING_HEADER_NAMES
from fastserve.sendfile import file_size, path_to_send, send_file, zero_copy_region
from fastserve.sockets import socket_address

error_logger = logging.getLogger("fastserve.error")

# Unread request bytes (body of the current request plus pipelined requests)
# above which reading from the socket pauses, and below which it resumes.
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
# Parsed requests that may wait behind the one being answered. The request
# after them is not parsed: its bytes are parked until one of them is answered.
MAX_PIPELINED = 32
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
# What feed's except clause found: llhttp refused a method (see parse_extension_method).
REFUSED_METHOD = object()

# The methods llhttp knows, as the parser gives them and as the scope carries
# them: one lookup decodes them. Any other token is a method too (RFC 9110 9.1);
# llhttp refuses those, and h11 parses that request (see parse_extension_method).
KNOWN_METHODS = {
    method.encode("ascii"): method
    for method in (
        "DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE PATCH QUERY COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
        "SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
        "UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE"
    ).split()
}
# While a head or a chunked body goes on across reads, the bytes since the last
# request boundary are kept (at most this many) in case llhttp then stops at a
# method it does not know and h11 must find where that request began.
REPLAY_LIMIT = 64 * 1024
MAX_BODY_LEFT = 2**62
# The largest response Content-Length (a Py_ssize_t when compiled).
MAX_CONTENT_LENGTH = 2**63 - 1
# At shutdown, how long a new connection may take to send its first request.
FIRST_REQUEST_GRACE = 1.0
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS_LINE = b"HTTP/1.1 103 Early Hints\r\n"
LAST_CHUNK = b"0\r\n\r\n"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2C_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
# What a connection may switch to (HTTP1Protocol.upgrade_to).
WEBSOCKET = "websocket"
H2C = "h2c"
BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
NO_FRAMING = ()
# The ASGI response extensions every request is offered (early hints on HTTP/1.1
# only: an HTTP/1.0 client may not expect an informational response).
RESPONSE_EXTENSIONS_11 = dict(RESPONSE_EXTENSIONS)
RESPONSE_EXTENSIONS_10 = {name: {} for name in RESPONSE_EXTENSIONS if name != "http.response.early_hint"}
FRAGMENT_BYTE = ord("#")
ESCAPE_BYTE = ord("%")
_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("ascii")) for status in HTTPStatus
}


def http2_settings_valid(value):
    """Whether an HTTP2-Settings value is a SETTINGS payload in base64url, unpadded (RFC 7540 3.2.1)."""
    if not BASE64URL.fullmatch(value):
        return False
    return len(base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))) % 6 == 0


def status_line(status):
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def extension_method(method):
    """A method that is not one of llhttp's: the scope's string if it is a token, else a 400."""
    if not is_token(method) or method == b"PRI":  # (PRI is the HTTP/2 preface's, RFC 9113 3.4)
        raise RequestError(400, "Invalid method")
    return method.decode("ascii")


def refused_method(exc):
    """Whether llhttp stopped at a method it does not know (a request for h11 to parse)."""
    name = type(exc).__name__
    return name == "HttpParserInvalidMethodError" or (
        name == "HttpParserError" and str(exc) == "Invalid method for HTTP/x.x request"
    )


def request_error(exc):
    """The RequestError behind a parser error (httptools wraps what a callback raises), or None."""
    for candidate in (exc, exc.__context__, exc.__cause__):
        if isinstance(candidate, RequestError):
            return candidate
    return None


def error_status(exc):
    """The status code for a parser error (ours, httptools' or the h11 adapter's)."""
    error = request_error(exc)
    if error is not None:
        return error.status
    if "HTTP version" in str(exc):
        return 505
    return 400


def switch_rest(exc, data):
    """The bytes after a request that asks to switch protocols, if ``exc`` is the parser stopping there; else None.

    llhttp stops with HttpParserUpgrade and the offset in ``data`` of what
    follows; the h11 adapter with ProtocolSwitch, which carries those bytes.
    """
    if isinstance(exc, ProtocolSwitch):
        return exc.rest
    if type(exc).__name__ == "HttpParserUpgrade":
        return b"" if data is None else bytes(data[exc.args[0] :])
    return None


def unexpected_error(exc):
    """The exception behind a parsing failure when it is a fault of ours, not the client's; else None.

    httptools reports an exception raised in a callback as its own
    HttpParserCallbackError, with the callback's exception as the context.
    """
    if isinstance(exc, (RequestError, h11.RemoteProtocolError)):
        return None
    if type(exc).__module__.startswith("httptools"):
        context = exc.__context__
        if context is None or isinstance(context, RequestError):
            return None
        return context
    return exc


def pipeline_full(exc):
    """The PipelineFull behind a parsing stop (raised directly, or through httptools), or None."""
    if type(exc) is PipelineFull:
        return exc
    context = exc.__context__
    if type(context) is PipelineFull:
        return context
    return None


class HTTP1Protocol:
    """One HTTP/1.1 connection (asyncio.Protocol and BufferedProtocol interfaces)."""

    def __init__(self, state):
        self.state = state
        self.transport = None
        self.parser = None
        # No parser while the connection is idle between requests (see
        # check_deadline); the next bytes make a new one (see parse).
        self.parser_asleep = False
        # The connection's addresses and scheme, which every request's scope
        # carries (see build_scope): the socket's, or a PROXY protocol header's.
        self.server = None
        self.client = None
        self.scheme = state.scheme
        self.client_label = ""
        self.cycle = None
        self.parsing = None
        # Requests parsed while an earlier one is answered (at most MAX_PIPELINED:
        # a list, which costs an idle connection less memory than a deque).
        self.pipeline = []
        self.closed = False
        self.lingering = False
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter = None
        self.buffered = 0
        self.deadline = 0.0
        self.pending_error = 0
        self.held_output = None  # (a list while output is held back: see hold)
        self.held_size = 0
        self.flush_handle = None
        self.plain_tasks = True
        self.answered = False
        self.tls = None
        # The scope's "extensions" for HTTP/1.1 and 1.0 requests (see build_scope).
        self.extensions_11 = None
        self.extensions_10 = None
        self.trusted_proxy = False
        # (server, client, scheme) from a PROXY protocol header, set before connection_made.
        self.proxied = None
        # Requests begun on this connection, and what a replay of bytes llhttp
        # has been through needs (see replay_base): only with httptools.
        self.begun = 0
        self.replays = False
        self.replay = None
        self.replay_begun = 0
        # Body bytes the request being parsed still lacks; -1 and below: chunked.
        self.body_left = 0
        # Bytes of a chunked body's framing and trailers since its last body byte.
        self.framing_bytes = 0
        # Received bytes not parsed yet because the pipeline is full (see park).
        self.parked = None
        # A WebSocket handshake waiting for its turn: (scope, handshake), and the bytes after it.
        self.upgrade_to = None
        self.upgrade_bytes = b""
        # The connection's first bytes while they may be the HTTP/2 preface (see await_http2_preface).
        self.preface_bytes = b""
        # Header lines an error answer carries (426 names the WebSocket version spoken).
        self.error_lines = b""
        self.reset_request_head()
        self.release_head()

    def reset_request_head(self):
        self.in_head = False
        self.head_bytes = 0
        self.field_bytes = 0
        self.url = b""
        self.headers = []
        self.content_length_count = 0
        self.content_length = b""
        self.host_count = 0
        self.transfer_encoding = None
        self.connection_close = False
        self.connection_keep_alive = False
        self.expect_continue = False
        self.upgrade = False
        self.websocket_upgrade = False
        self.te_trailers = False
        self.forwarding = None
        self.head_error = None

    def release_head(self):
        """The scope has the head's target and fields: an idle connection does not keep them."""
        self.url = b""
        self.headers = None
        self.forwarding = None

    # asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport):
        state = self.state
        self.transport = transport
        self.parser = state.parser_factory(self)
        self.replays = not isinstance(self.parser, H11Parser)
        proxied = self.proxied
        if proxied is None:
            self.set_addresses(
                socket_address(transport.get_extra_info("sockname")),
                socket_address(transport.get_extra_info("peername")),
                None,
            )
        else:
            self.set_addresses(proxied[0], proxied[1], proxied[2])
        if state.tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            self.tls = state.tls.extension(ssl_object)
            if state.http2 is not None and ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self.switch_to_http2(b"")
                return
        state.connections.add(self)
        self.deadline = state.now + state.timeout_keep_alive
        # A task factory (one an app sets at startup, say) is honoured; without
        # one, requests make their Tasks directly (see start_cycle).
        self.plain_tasks = state.loop.get_task_factory() is None
        if state.shutting_down:
            # Accepted just before the listener closed: the client means to send
            # a request, and gets it answered (see shutdown) rather than a reset.
            self.shutdown()

    def set_addresses(self, server, client, scheme):
        """The connection's addresses, and scheme unless None: the socket's, or a PROXY header's."""
        state = self.state
        self.server = server
        self.client = client
        if scheme is not None:
            self.scheme = scheme
        self.client_label = "" if client is None else f"{client[0]}:{client[1]}"
        if state.proxy is not None:
            self.trusted_proxy = state.proxy.trusts_peer(client)

    def connection_lost(self, exc):
        self.closed = True
        self.parser = None
        self.parser_asleep = False
        self.parked = None
        self.state.connections.discard(self)
        self.pipeline.clear()
        self.held_output = None
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        cycle = self.cycle
        if cycle is not None:
            cycle.wake()
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self):
        """The client half-closed: the requests it completed are still answered, then the connection closes.

        A half-close and a client gone look the same here. An app already
        waiting in receive() once its body is in waits to hear of a disconnect,
        and gets it: the transport closes, as when the request being answered
        was cut short. Otherwise its response goes out, and a request after it
        that was cut short is dropped.
        """
        cycle = self.cycle
        if cycle is None or self.parsing is cycle or cycle.waiter is not None or self.closed:
            return None  # let the transport close
        self.drop_parsing()
        self.parser = None  # cycle_done closes once the pipeline is answered
        self.parked = None
        self.deadline = 0.0
        return True

    def data_received(self, data):
        self.feed(data)

    # asyncio.BufferedProtocol, which uvloop prefers when it is offered: the
    # loop reads into the server's shared receive buffer instead of copying each
    # read into a new bytes object, and the parser consumes it at once.

    def get_buffer(self, sizehint):
        return self.state.receive_buffer

    def buffer_updated(self, nbytes):
        self.feed(self.state.receive_buffer[:nbytes])

    def feed(self, data):
        """Parse received bytes (a bytes object or a view of the receive buffer), then start the app.

        The app of a request parsed in this read starts once the parser is
        done with the read (see start_cycle): its body, if it came along, is in.
        """
        if (
            self.begun == 0
            and not self.closed
            and self.state.http2 is not None
            and (self.preface_bytes or data[:1] == b"P")
        ):
            data = self.take_http2_preface(data)
            if data is None:
                return
        self.parse(data)
        cycle = self.cycle
        if cycle is not None and cycle.task is None and not cycle.running and not cycle.complete:
            self.start_cycle(cycle, True)

    def take_http2_preface(self, data):
        """What of the connection's first bytes is HTTP/1.1 to parse; None if they are the HTTP/2 preface so far.

        The whole preface hands the connection to HTTP/2 (h2c with prior
        knowledge); a part of it is kept until more comes.
        """
        kept = self.preface_bytes
        seen = kept + bytes(data) if kept else bytes(data[: len(HTTP2_PREFACE)])
        if seen[: len(HTTP2_PREFACE)] != HTTP2_PREFACE[: len(seen)]:
            self.preface_bytes = b""
            return seen if kept else data
        if len(seen) < len(HTTP2_PREFACE):
            self.preface_bytes = seen
            return None
        self.preface_bytes = b""
        self.switch_to_http2(kept + bytes(data))
        return None

    def parse(self, data):
        parser = self.parser
        if parser is None and self.parser_asleep:
            parser = self.parser = self.state.parser_factory(self)
            self.parser_asleep = False
        if parser is None:
            if self.upgrade_to is not None:
                self.upgrade_bytes += bytes(data)  # (reading is paused: at most what the transport had)
            return
        if self.parked is not None:
            self.parked += bytes(data)  # (reading is paused; a transport may still hand over what it had)
            return
        # Where this read begins, should its bytes have to be replayed.
        continuing = self.parsing
        body_left = self.body_left
        in_head = self.in_head
        begun = self.begun
        stop = None
        try:
            parser.feed_data(data)
        except Exception as exc:
            if self.replays and refused_method(exc):
                stop = REFUSED_METHOD
            else:
                stop = pipeline_full(exc)
                if stop is None:
                    self.on_parse_error(exc, data)
                    return
        if stop is not None:
            # (Not in the except clause: an error raised there would carry this one as its context.)
            base = self.replay_base(data, continuing, body_left, in_head, begun)
            if stop is REFUSED_METHOD:
                self.parse_extension_method(base)
            else:
                self.park(stop, base)
            return
        if self.parser is not parser:
            return  # an extension-method request ended in this read, and the rest went to a new parser
        if self.in_head:
            if in_head and begun == self.begun:
                self.head_bytes += len(data)  # the head went on through the whole read
            else:
                self.head_bytes = self.head_bytes_begun(data, continuing, body_left, in_head, begun)
            if self.head_bytes > self.state.max_head_size:
                self.on_parse_error(RequestError(431, "Request header section too large"))
                return
        elif continuing is not None and body_left < 0 and self.parsing is continuing:
            # A chunked body went on through this read. What was not body is
            # framing or trailer fields, which httptools keeps until a field
            # ends: bounded like a head, counted since the last body byte.
            delivered = body_left - self.body_left
            self.framing_bytes = len(data) - delivered + (0 if delivered else self.framing_bytes)
            if self.framing_bytes > self.state.max_head_size:
                self.on_parse_error(RequestError(431, "Chunk framing or trailer section too large"))
                return
        if self.replays and (self.in_head or (self.parsing is not None and self.body_left < 0)):
            self.keep_for_replay(self.replay_base(data, continuing, body_left, in_head, begun))
        elif self.replay is not None:
            self.replay = None

    def head_bytes_begun(self, data, continuing, body_left, in_head, begun):
        """The size of a head that began in this read and goes on in the next (see feed).

        Known at once when it is the only request begun in a read that began at
        a request boundary or inside a Content-Length body; else found as an
        extension method's start is (see request_start). Failing that, what the
        parser handed over of it (the target and field_bytes), which leaves out
        at most the field it holds (and the next read counts in full).
        """
        if self.begun == begun + 1 and not in_head and (continuing is None or body_left >= 0):
            return len(data) - (body_left if continuing is not None else 0)
        base = self.replay_base(data, continuing, body_left, in_head, begun)
        if base is not None:
            start = request_start(base[0], self.begun - base[1] - 1, self.state)
            if start is not None:
                return len(base[0]) - start
        return len(self.url) + self.field_bytes

    # Extension methods on the httptools path ----------------------------
    # llhttp stops at a method it does not know. h11 then parses that request
    # from its first byte, and a new llhttp parser takes the bytes after it.
    # httptools does not say where in a read the refused request began, so it
    # is found by replaying the read with h11 from the last request boundary
    # whose place is known: the start of the read, the end of a Content-Length
    # body that was going on, or bytes kept from earlier reads.

    def replay_base(self, data, continuing, body_left, in_head, begun):
        """(bytes from a known request boundary to the end of ``data``, requests begun before it), or None.

        The other arguments say where the read of ``data`` began: inside the
        body of ``continuing`` (``body_left`` bytes short of its end; below zero,
        chunked), inside a head, or (neither) at a request boundary; ``begun``
        counted the requests begun before it.
        """
        if in_head or (continuing is not None and body_left < 0):
            if self.replay is None:
                return None  # more than REPLAY_LIMIT went by since the boundary
            return self.replay + bytes(data), self.replay_begun
        if continuing is not None:
            return bytes(data[body_left:]), begun
        return bytes(data), begun

    def keep_for_replay(self, base):
        """A head or a chunked body goes on in the next read: keep what a replay would need."""
        if base is None or len(base[0]) > REPLAY_LIMIT:
            self.replay = None
        else:
            self.replay = base[0]
            self.replay_begun = base[1]

    def parse_extension_method(self, base):
        """llhttp refused the last request begun in ``base`` (see replay_base): h11 parses it."""
        self.replay = None
        while True:
            start = None if base is None else request_start(base[0], self.begun - base[1] - 1, self.state)
            if start is None:
                self.on_parse_error(RequestError(400, "Invalid method"))
                return
            slow = ExtensionMethodParser(self)
            self.parser = slow
            try:
                rest = slow.receive(base[0][start:])
            except Exception as exc:
                self.on_parse_error(exc)
                return
            if rest is None or self.parser is not slow:
                return  # the request goes on in later reads (or the connection is done)
            base = self.parse_fast(rest)
            if base is None:
                return

    def resume_fast_parsing(self, rest):
        """The extension-method request ended in this read: llhttp parses what follows it."""
        base = self.parse_fast(rest)
        if base is not None:
            self.parse_extension_method(base)

    def parse_fast(self, data):
        """A new llhttp parser takes ``data``, which begins at a request boundary.

        Returns the replay base when llhttp refuses a method in it, else None.
        """
        parser = self.parser = self.state.parser_factory(self)
        begun = self.begun
        try:
            parser.feed_data(data)
        except Exception as exc:
            if refused_method(exc):
                return data, begun
            full = pipeline_full(exc)
            if full is None:
                self.on_parse_error(exc, data)
            else:
                self.park(full, (data, begun))
            return None
        if self.in_head or (self.parsing is not None and self.body_left < 0):
            self.keep_for_replay(self.replay_base(data, None, 0, False, begun))
        return None

    # A full pipeline ------------------------------------------------------
    # on_message_begin refuses a request while MAX_PIPELINED wait to be
    # answered; the parser stops there, and the bytes from that request on are
    # parked until one of them is answered (see maybe_resume_reading). Reading
    # is paused by then, so nothing else is parsed or read meanwhile.

    def park(self, stop, base):
        """Keep the bytes from the refused request on, for a fresh parser to take later.

        ``stop`` is the PipelineFull raised; ``base`` the replay base of the
        read (see replay_base), where httptools' stop is found.
        """
        self.replay = None
        rest = stop.rest
        if rest is None and base is not None:
            start = request_start(base[0], self.begun - base[1], self.state)
            if start is not None:
                rest = base[0][start:]
        if rest is None:
            # The place is lost (more than REPLAY_LIMIT since a known boundary):
            # the requests already parsed are answered, and then the connection
            # closes, which tells a pipelining client to retry the rest.
            error_logger.debug("Pipeline overflow from %s: closing after the queued requests", self.client_label)
            self.parser = None
            return
        self.parser = self.state.parser_factory(self)
        self.parked = rest

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # Parser callbacks ---------------------------------------------------

    def on_message_begin(self):
        if len(self.pipeline) >= MAX_PIPELINED:
            raise PipelineFull
        self.begun += 1
        self.reset_request_head()
        self.in_head = True
        self.deadline = self.state.now + self.state.timeout_request_header

    def on_url(self, url):
        if len(self.url) + len(url) > self.state.limit_request_line:
            self.refuse_later(RequestError(414, "Request target too long"))
            return
        self.url += url

    def refuse_later(self, error):
        """Refuse the request once its head is complete (see check_head), unless a syntax error comes first.

        Refusing at once would make the status depend on where reads end: llhttp
        hands a field over only when the next one begins, and a bad byte there
        would win or lose by that. Nothing refused this way is kept meanwhile.
        """
        if self.head_error is None:
            self.head_error = error

    def on_header(self, name, value):
        if not self.in_head:
            return  # a trailer field of a chunked body: ASGI has no place for them
        if len(self.headers) >= self.state.limit_request_fields:
            self.refuse_later(RequestError(431, "Too many request header fields"))
            return
        size = len(name) + len(value)
        if size > self.state.limit_request_field_size:
            self.refuse_later(RequestError(431, "Request header field too large"))
            return
        # The head's size as the fields make it up, for a head that came in one
        # read (feed counts the bytes of one that spans reads).
        self.field_bytes += size + 4
        if self.field_bytes + len(self.url) > self.state.max_head_size:
            self.refuse_later(RequestError(431, "Request header section too large"))
            return
        key = HEADER_KEYS.get(name)
        name = request_header_key(name) if key is None else key
        size = len(value)
        if size and (value[size - 1] == 32 or value[size - 1] == 9):
            # Whitespace around a field value is not part of it (RFC 9112 5);
            # llhttp drops the leading whitespace, not the trailing.
            stripped = value.rstrip(b" \t")
            if name == b"transfer-encoding" and b"\t" in value[len(stripped) :]:
                raise RequestError(400, "Tab after the transfer coding")  # as llhttp refuses it
            value = stripped
        self.headers.append((name, value))
        if name == b"content-length":
            self.content_length_count += 1
            self.content_length = value
            if not value.isdigit():
                raise RequestError(400, "Invalid Content-Length")
        elif name == b"transfer-encoding":
            if self.transfer_encoding is not None:
                raise RequestError(400, "Repeated Transfer-Encoding")
            self.transfer_encoding = value
        elif name == b"host":
            self.host_count += 1
        elif name == b"connection":
            for token in value.lower().split(b","):
                token = token.strip()
                if token == b"close":
                    self.connection_close = True
                elif token == b"keep-alive":
                    self.connection_keep_alive = True
                elif token == b"upgrade":
                    self.upgrade = True
        elif name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_continue = True
            else:
                self.refuse_later(RequestError(417, "Unsupported expectation"))
        elif name == b"te":
            for token in value.lower().split(b","):
                if token.strip() == b"trailers":
                    self.te_trailers = True
        elif name == b"upgrade":
            if names_websocket(value):
                self.websocket_upgrade = True
        elif self.trusted_proxy and name in FORWARDING_HEADER_NAMES:
            if self.forwarding is None:
                self.forwarding = []
            self.forwarding.append((name, value))

    def on_headers_complete(self):
        self.in_head = False
        self.deadline = 0.0
        parser = self.parser
        version = parser.get_http_version()
        method = self.check_head(parser.get_method(), version)
        state = self.state
        if self.body_left and state.timeout_request_body:
            self.deadline = state.now + state.timeout_request_body
        if self.websocket_upgrade and state.websocket is not None:
            self.await_switch_to_websocket(method, version)
            return
        if self.upgrade and state.http2 is not None and state.http2.h2c_upgrade:
            if self.await_switch_to_http2(method, version):
                return
        http11 = version == "1.1"
        if http11:
            keep_alive = not self.connection_close
        else:
            keep_alive = self.connection_keep_alive and not self.connection_close
        if self.upgrade or method == "CONNECT":
            keep_alive = False
            if self.upgrade:
                self.log_upgrade_not_taken()
        scope = self.build_scope(method, version, http11)
        self.release_head()
        cycle = self.new_cycle(scope, http11, keep_alive)
        self.parsing = cycle
        if self.cycle is None:
            self.cycle = cycle  # started when the read is parsed (see feed)
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= MAX_PIPELINED:
                self.pause_reading()

    def await_switch_to_websocket(self, method, version):
        """A WebSocket handshake: checked now (an invalid one is refused), switched to when its turn comes.

        The parser stops after this request (see protocol_switch); requests
        pipelined before it are answered first (see cycle_done).
        """
        if self.body_left:
            raise HandshakeError(400, "WebSocket handshake with a body")
        handshake = check_handshake(method, version, self.headers)
        scope = websocket_scope(self.build_scope(method, version, True), handshake, self.tls)
        self.upgrade_to = (WEBSOCKET, scope, handshake)
        self.release_head()

    def await_switch_to_http2(self, method, version):
        """Whether this is an ``Upgrade: h2c`` to take up (RFC 7540 3.2): checked now, switched to in its turn.

        Only a bodiless HTTP/1.1 request on a cleartext connection is taken up;
        any other is answered as HTTP/1.1 (which the RFC allows). One asking to
        upgrade without exactly one valid HTTP2-Settings, named in Connection,
        is refused with 400.
        """
        headers = self.headers
        if not any(name == b"upgrade" and names_token(value, b"h2c") for name, value in headers):
            return False
        if self.tls is not None or version != "1.1" or self.body_left:
            return False
        settings = [value for name, value in headers if name == b"http2-settings"]
        connection_names_it = any(
            name == b"connection" and names_token(value, b"http2-settings") for name, value in headers
        )
        if len(settings) != 1 or not connection_names_it or not http2_settings_valid(settings[0]):
            raise RequestError(400, "Invalid h2c upgrade: one HTTP2-Settings header, named in Connection")
        self.upgrade_to = (H2C, self.build_scope(method, version, True), settings[0])
        self.release_head()
        return True

    def protocol_switch(self, rest):
        """The parser stopped after a request that asks to switch protocols; ``rest`` is what followed it."""
        self.parser = None
        if self.upgrade_to is None:
            return  # a switch not taken up: the request is answered as plain HTTP, then the connection closes
        self.upgrade_bytes = rest
        if self.cycle is None:
            self.switch_protocols()
        else:
            self.pause_reading()

    def switch_protocols(self):
        """Hand the connection to the protocol asked for (its request's turn has come), with the bytes after it.

        A WebSocketProtocol gets the handshake's scope; HTTP/2 (h2c) gets the
        upgrading request as its stream 1, after the 101 that says so.
        """
        kind, scope, detail = self.upgrade_to
        rest = self.upgrade_bytes
        self.upgrade_to = None
        self.upgrade_bytes = b""
        state = self.state
        if kind == H2C:
            self.write(H2C_SWITCHING)
            protocol = state.http2.protocol(
                state, self.server, self.client, self.scheme, self.tls, self.client_label, (scope, detail)
            )
        else:
            protocol = state.websocket.protocol(state, scope, detail, self.client_label)
        self.hand_over(protocol, rest)

    def switch_to_http2(self, early_bytes):
        """Hand the connection to HTTP/2: it began with the preface (``early_bytes``), or ALPN chose h2."""
        state = self.state
        self.hand_over(
            state.http2.protocol(state, self.server, self.client, self.scheme, self.tls, self.client_label),
            early_bytes,
        )

    def hand_over(self, protocol, early_bytes):
        """Give the transport to the next protocol, with the bytes read that are its."""
        self.flush()  # (responses to requests pipelined before the switch go first)
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        self.parser = None
        self.parser_asleep = False
        self.closed = True  # this protocol is done with the connection
        self.deadline = 0.0
        self.state.connections.discard(self)
        transport = self.transport
        transport.set_protocol(protocol)
        protocol.start(transport, self.read_paused, early_bytes)

    def check_head(self, raw_method, version):
        """The scope's method once the head as a whole holds together; else a RequestError.

        (The h11 parser also asks this of a head that h11 refused, so that the
        status is the one this protocol would have given on llhttp.)
        """
        method = KNOWN_METHODS.get(raw_method)
        if method is None:
            method = extension_method(raw_method)
        # First what llhttp refuses while it reads the fields, then the version,
        # then what the field checks put off (refuse_later), then the rest.
        if self.content_length_count > 1:
            raise RequestError(400, "Repeated Content-Length")
        if self.transfer_encoding is not None:
            if self.content_length_count:
                raise RequestError(400, "Transfer-Encoding with Content-Length")
            if self.transfer_encoding.strip().lower() != b"chunked":
                raise RequestError(400, "Unsupported Transfer-Encoding")
        if version != "1.1" and version != "1.0":
            # llhttp reads a request line without a version as HTTP/0.9.
            if version == "0.9":
                raise RequestError(400, "Missing or obsolete HTTP version")
            raise RequestError(505, "HTTP version not supported")
        if self.head_error is not None:
            raise self.head_error
        http11 = version == "1.1"
        if self.host_count > 1 or (http11 and self.host_count == 0):
            raise RequestError(400, "A request needs exactly one Host header")
        if self.transfer_encoding is not None:
            if not http11:
                raise RequestError(400, "Transfer-Encoding on HTTP/1.0")
            self.body_left = -1
            self.framing_bytes = 0
        elif self.content_length_count:
            # (Digits only; a length no body reaches is as good as any longer one.)
            self.body_left = int(self.content_length) if len(self.content_length) < 19 else MAX_BODY_LEFT
        else:
            self.body_left = 0
        return method

    def connection_scope(self):
        """A new scope with what is the same for every request on this connection (see asgi.build_scope_template)."""
        scope = self.state.scope_template.copy()
        scope["scheme"] = self.scheme
        scope["server"] = self.server
        scope["client"] = self.client
        return scope

    def build_scope(self, method, version, http11):
        """The request's scope: the connection's (see connection_scope) plus what this request says."""
        url = self.url
        # The common target, "/path?query" with no fragment or escapes, is split
        # and decoded here; asgi.split_target and decode_path handle the rest.
        # (A byte value, not a one-byte string, is looked for: bytes.__contains__
        # tries its argument as an int first, and failing that is costly.)
        if url[:1] == b"/" and FRAGMENT_BYTE not in url:
            raw_path, _, query_string = url.partition(b"?")
        else:
            raw_path, query_string = split_target(url)
        if ESCAPE_BYTE in raw_path:
            path = decode_path(raw_path)
        else:
            path = raw_path.decode("utf-8", "replace")
        scope = self.connection_scope()
        scope["asgi"] = ASGI_VERSION.copy()
        # One extensions dict serves the requests of a connection while no app
        # changes it (a new dict per request measured 1.6 % of a plaintext
        # request); one that gained or lost a key is left to its request.
        extensions = self.extensions_11 if http11 else self.extensions_10
        if extensions is None or len(extensions) != len(
            RESPONSE_EXTENSIONS_11 if http11 else RESPONSE_EXTENSIONS_10
        ) + (self.tls is not None):
            extensions = self.offered_extensions(http11)
        scope["extensions"] = extensions
        scope["http_version"] = version
        scope["method"] = method
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query_string
        scope["headers"] = self.headers
        scope["state"] = self.state.lifespan_state.copy()
        if self.forwarding is not None:
            scope["client"], scope["scheme"] = self.state.proxy.resolve(
                self.forwarding, scope["client"], scope["scheme"]
            )
        return scope

    def offered_extensions(self, http11):
        """A new dict of the extensions this connection offers, for its next requests to share."""
        extensions = dict(RESPONSE_EXTENSIONS_11 if http11 else RESPONSE_EXTENSIONS_10)
        if self.tls is not None:
            extensions["tls"] = self.tls
        if http11:
            self.extensions_11 = extensions
        else:
            self.extensions_10 = extensions
        return extensions

    def on_body(self, body):
        self.body_left -= len(body)
        if self.deadline:
            self.deadline = self.state.now + self.state.timeout_request_body
        cycle = self.parsing
        if cycle is None or cycle.complete:
            return
        cycle.body.append(body)
        cycle.body_size += len(body)
        self.buffered += len(body)
        if cycle is self.cycle:
            cycle.wake()
        if self.buffered > READ_HIGH_WATER:
            self.pause_reading()

    def on_message_complete(self):
        cycle = self.parsing
        self.parsing = None
        if cycle is not None:
            cycle.body_complete = True
            if cycle is self.cycle:
                cycle.wake()
        self.deadline = 0.0

    # Flow control -------------------------------------------------------

    def pause_reading(self):
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def maybe_resume_reading(self):
        if (
            self.read_paused
            and self.parser is not None
            and self.buffered <= READ_LOW_WATER
            and len(self.pipeline) < MAX_PIPELINED
            and not self.closed
        ):
            parked = self.parked
            if parked is not None:
                # Parse what a full pipeline left unparsed before reading more,
                # once half of the pipeline is answered (not a request at a time).
                if len(self.pipeline) > MAX_PIPELINED // 2:
                    return
                self.parked = None
                self.feed(parked)
                self.maybe_resume_reading()
                return
            self.read_paused = False
            if self.parsing is not None and self.deadline:
                # The body timeout measures the client, not the time reading was paused.
                self.deadline = self.state.now + self.state.timeout_request_body
            self.transport.resume_reading()

    async def drain(self):
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.state.loop.create_future()
        await waiter

    # Request cycles -----------------------------------------------------

    def new_cycle(self, scope, http11, keep_alive):
        """The cycle of a request whose head is in (made by ``__new__`` and ``setup``: see RequestCycle.setup)."""
        cycle = RequestCycle.__new__(RequestCycle)
        cycle.setup(self, scope, http11, keep_alive, self.expect_continue and http11, self.te_trailers and http11)
        return cycle

    def start_cycle(self, cycle, eager):
        """Run the app for ``cycle`` in a Task; with ``eager``, its first step now (where the loop allows).

        A pipelined request's Task (started from the response before it, see
        cycle_done) waits for the loop: started at once, a batch of requests
        whose apps never wait would nest one inside another.
        """
        if self.state.access_format is not None:
            cycle.started_at = perf_counter()
        if not cycle.start_app(eager, self.plain_tasks, TASK_NAME):
            cycle.complete = True
            self.send_error(503, cycle)

    def cycle_done(self, cycle):
        """The response of ``cycle`` is complete: go on with the connection."""
        if self.cycle is not cycle:
            return
        self.cycle = None
        self.answered = True
        self.buffered -= cycle.body_size
        cycle.body = []
        cycle.body_size = 0
        if not cycle.keep_alive or not cycle.body_complete or self.state.shutting_down:
            self.close()
            return
        if self.pipeline:
            cycle = self.pipeline.pop(0)
            self.cycle = cycle
            self.start_cycle(cycle, False)
        elif self.pending_error:
            self.send_error(self.pending_error)
            return
        elif self.upgrade_to is not None:
            if self.parser is None:  # (the parser has stopped after the handshake)
                self.switch_protocols()
            return
        elif self.parser is None:
            self.close()  # parsing stopped (the client half-closed, say): nothing more to answer
            return
        elif self.parsing is None and not self.in_head:
            # (A head on its way keeps its own, header deadline.)
            self.deadline = self.state.now + self.state.timeout_keep_alive
        self.maybe_resume_reading()

    def log_upgrade_not_taken(self):
        """An Upgrade the server does not take up is answered as plain HTTP/1.1 (RFC 9110 7.8).

        Only a WebSocket upgrade with --ws none is worth a warning: a client
        offering h2c (``curl --http2``) without --h2c-upgrade, or a protocol the
        server does not speak, simply goes on in HTTP/1.1.
        """
        if self.websocket_upgrade:
            error_logger.warning(
                "WebSocket upgrade request from %s answered as plain HTTP: WebSockets are off (--ws none)",
                self.client_label,
            )
        else:
            error_logger.debug("Upgrade request from %s not taken up: answered in HTTP/1.1", self.client_label)

    def on_parse_error(self, exc, data=None):
        """The parser stopped at ``exc`` while parsing ``data``: a request to switch protocols, or an error."""
        rest = switch_rest(exc, data)
        if rest is not None:
            self.protocol_switch(rest)
            return
        bug = unexpected_error(exc)
        if bug is not None:
            # A fault of ours (or of what a request's handling calls, such as a
            # proxy resolver) is no client error: a 500, and its traceback.
            error_logger.error("Exception while handling a request from %s", self.client_label, exc_info=bug)
            self.refuse(500)
            return
        error = request_error(exc)
        if isinstance(error, HandshakeError):
            self.error_lines = error.header_lines()
        reason = getattr(exc if error is None else error, "reason", None) or str(exc)
        error_logger.warning("Invalid HTTP request received: %s", escape_for_log(reason.encode("utf-8", "replace")))
        self.refuse(error_status(exc))

    def refuse(self, status):
        """Stop parsing, and answer the request being parsed with ``status`` once those before it are answered."""
        self.parser = None
        self.parked = None
        self.pause_reading()
        cycle = self.cycle
        if cycle is None:
            self.send_error(status)
        elif self.parsing is cycle:
            # The body of the request being answered is broken. Whatever the app
            # does next, none of its response goes out: it sees a disconnect, and
            # the client gets `status` (or, if the head has left, a cut connection).
            # (An app whose request came in the read that broke has not started
            # yet, see feed: it runs all the same, and hears of the disconnect.)
            if cycle.task is None and not cycle.running:
                self.start_cycle(cycle, False)
            self.parsing = None
            cycle.body_error = status
            cycle.wake()
            cycle.abort(status)
        else:
            # A later, pipelined request is broken: answer those before it, then
            # the error. If its head was parsed, it is dropped, never started.
            self.drop_parsing()
            self.pending_error = status

    def drop_parsing(self):
        """Forget the pipelined request being parsed: it will not be answered."""
        broken = self.parsing
        if broken is not None:
            if broken in self.pipeline:  # (graceful shutdown may have cleared it)
                self.pipeline.remove(broken)
            self.buffered -= broken.body_size
            self.parsing = None

    def check_deadline(self, now):
        """Called by the server's once-a-second sweep: the one deadline that runs, if it has passed.

        It is the head's (--timeout-request-header), the body's between two
        reads (--timeout-request-body) or the idle connection's (--timeout-keep-alive).
        """
        if self.closed:
            if self.lingering and now >= self.deadline:
                self.close()  # the end of a lingering close
            return
        if self.deadline and now >= self.deadline:
            parsing = self.parsing
            if self.in_head:
                error_logger.debug("Request header timeout from %s", self.client_label)
            elif parsing is not None:
                if self.read_paused or (parsing is self.cycle and parsing.expect_continue):
                    # The server is not reading, or the client waits for its 100 Continue.
                    self.deadline = now + self.state.timeout_request_body
                    return
                error_logger.debug("Request body timeout from %s", self.client_label)
            else:
                self.deadline = 0.0
                self.close()
                return
            self.deadline = 0.0
            self.refuse(408)
        elif (
            self.cycle is None
            and self.parsing is None
            and not self.in_head
            and self.parser is not None
            and self.parked is None
            and self.replay is None
            and self.upgrade_to is None
            and not self.read_paused
        ):
            # Idle between requests: a parser is most of what such a connection
            # holds (about 0.9 KiB with httptools), and a new one costs little
            # next to the second that went by.
            self.parser = None
            self.parser_asleep = True

    def shutdown(self):
        """Graceful shutdown: close when idle, else after the current response.

        A connection that has not sent its first request yet is not idle: the
        client connected to send one (the loop may have accepted it just before
        the listener closed). It gets a second to send it, and its answer.
        """
        if self.closed:
            self.close()  # (ends a lingering close)
            return
        self.pipeline.clear()
        self.parked = None
        if self.cycle is None:
            if self.answered and not self.in_head:
                self.close()
            elif not self.in_head:
                # (From the loop's clock, not the sweep's, which may be a second behind: this is rare.)
                limit = self.state.loop.time() + FIRST_REQUEST_GRACE
                if self.deadline == 0.0 or self.deadline > limit:
                    self.deadline = limit

    def close(self, linger=False):
        """Close the connection; with ``linger`` (after an error answer), the output ends first
        (``lingering.end_output``: a client still sending the rest of an oversized head or body
        would otherwise get a reset that may take the answer with it)."""
        if self.closed:
            if self.lingering:  # (ends a lingering close)
                self.lingering = False
                self.transport.close()
            return
        self.parser = None
        self.parser_asleep = False
        self.flush()
        # Closed from here on: the app sees http.disconnect, and send() raises.
        self.closed = True
        self.lingering = end_output(self, linger)

    # Output ---------------------------------------------------------------
    # Every write goes through write(), so that responses held back while a
    # batch of pipelined requests is answered still leave in order.

    def write(self, data):
        if self.held_output:
            self.held_output.append(data)
            self.flush()
        else:
            self.transport.write(data)

    def writelines(self, parts):
        if self.held_output:
            parts = self.held_output + parts
            self.held_output = None
            self.held_size = 0
        self.transport.writelines(parts)

    def hold(self, parts, limit):
        """Keep output back to leave in one write with what follows it.

        Two cases: a finished response while the next pipelined request is
        answered (a batch whose apps finish without waiting leaves in one write
        instead of one per response), and big chunks of a streamed body (one
        writev of up to a MiB costs the kernel a good deal less per byte than
        one per 64 KiB chunk). The wait is bounded by one loop iteration after
        an app really waits, and by ``limit`` bytes.
        """
        if self.held_output is None:
            self.held_output = []
        for part in parts:
            self.held_output.append(part)
            self.held_size += len(part)
        if self.held_size > limit:
            self.flush()
        elif self.flush_handle is None:
            self.flush_handle = self.state.loop.call_soon(self.flush_when_idle)

    def flush_when_idle(self):
        self.flush_handle = None
        cycle = self.cycle
        if self.held_output and cycle is not None and not cycle.running and not self.closed:
            # The next app has not had its first step yet: let it run first.
            self.flush_handle = self.state.loop.call_soon(self.flush_when_idle)
        else:
            self.flush()

    def flush(self):
        if self.held_output:
            held, size = self.held_output, self.held_size
            self.held_output = None
            self.held_size = 0
            if self.closed:
                return
            if size >= ZERO_COPY_BODY:
                self.transport.writelines(held)
            else:
                self.transport.write(b"".join(held))

    def send_error(self, status, cycle=None):
        """Answer with a short plain-text error and close the connection.

        ``cycle`` is the request answered, when its head was parsed; the access
        log names it (else the line says "-" for the request). A HEAD request's
        answer has no body.
        """
        if self.closed:
            return
        self.write(
            error_response(status, self.state.default_headers, self.error_lines, cycle is None or not cycle.is_head)
        )
        self.close(linger=True)
        if self.state.access_log:
            if cycle is None:
                self.log_unparsed(status, error_body_size(status))
            else:
                cycle.status = status
                cycle.response_headers = None
                cycle.bytes_sent = error_body_size(status)
                cycle.log_access()

    def log_unparsed(self, status, size):
        """The access line of an error answered before a request head was parsed."""
        log_access(
            self.state.access_format,
            self.client_label,
            self.connection_scope() | UNPARSED_SCOPE,
            status,
            None,
            size,
            perf_counter(),
        )


class RequestCycle(app_cycle.AppCycle):
    """One request and its response: the ``receive`` and ``send`` an app gets (the app call: app_cycle.AppCycle)."""

    def __init__(self, conn, scope, http11, keep_alive, expect_continue, accepts_trailers):
        self.setup(conn, scope, http11, keep_alive, expect_continue, accepts_trailers)

    def setup(self, conn, scope, http11, keep_alive, expect_continue, accepts_trailers):
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

    def wake(self):
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def client_gone(self):
        # (After http.disconnect, for a client gone or a body broken, nobody waits for the answer.)
        return self.conn.closed or self.body_error != 0

    def abort(self, status):
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

    async def receive(self):
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

    def take_body(self):
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

    async def send(self, message):
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

    async def send_extension(self, message_type, message):
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

    def early_hint(self, message):
        """A 103 with the app's Link values, while the final head has not left (and never to HTTP/1.0)."""
        lines = [early_hint_line(link) for link in (message["links"] if "links" in message else ())]
        if lines and self.http11 and not self.head_sent:
            self.conn.write(b"".join((EARLY_HINTS_LINE, *lines, b"\r\n")))

    def write_trailers(self, message):
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

    async def send_path(self, message):
        """``http.response.pathsend``: the whole file at an absolute path is the rest of the body."""
        fd = os.open(path_to_send(message), os.O_RDONLY | os.O_CLOEXEC)
        try:
            await self.send_file_region(fd, 0, file_size(fd), False)
        finally:
            os.close(fd)

    async def send_zero_copy(self, message):
        """``http.response.zerocopysend``: a region of an open file, as a body message would."""
        fd, offset, count, from_position = zero_copy_region(message)
        await self.send_file_region(fd, offset, count, "more_body" in message and bool(message["more_body"]))
        if from_position:
            os.lseek(fd, offset + count, os.SEEK_SET)

    async def send_file_region(self, fd, offset, count, more_body):
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

    def start_response(self, message):
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

    def write_body(self, body, more_body):
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

    def frame(self, parts, length, more_body):
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

    def end_body(self):
        """The app's last body message: the response is complete, or waits for the trailers it promised."""
        if self.trailers:
            self.awaiting_trailers = True
        else:
            self.finish()

    def finish_head(self, length, more_body):
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

    def finish(self):
        self.complete = True
        conn = self.conn
        self.wake()
        if self.content_length >= 0 and self.bytes_sent < self.content_length and not self.no_body:
            error_logger.error("Response body shorter than its Content-Length")
            self.keep_alive = False
        if conn.state.access_log:
            self.log_access()
        conn.cycle_done(self)

    def log_access(self):
        log_exchange(self.conn, self.scope, self.status, self.response_headers, self.bytes_sent, self.started_at)

# cython: annotation_typing=False
"""The HTTP/1.1 connection: reading, parsing, flow control, deadlines and output.

One ``HTTP1Protocol`` per connection. It reads (``buffer_updated``), feeds the
parser and takes its callbacks (``on_header``... ``on_message_complete``),
checks each head, builds the scope, and gives each request to a
``RequestCycle`` (``http1_cycle``: the app's ``receive``/``send`` and the
response's encoding). A request body goes ``buffer_updated`` -> ``feed`` ->
``parse`` -> the parser -> ``on_body`` (here) -> ``cycle.body`` -> ``receive``
(``http1_cycle``). What runs rarely is elsewhere: the llhttp replay for
extension methods and a full pipeline (``http1_replay``), the protocol switch
(``http1_switch``), what a parser's error means (``refusals``).

The parser is pluggable and speaks httptools' callback interface:
``httptools.HttpRequestParser`` directly, or ``h11_parser.H11Parser``. Every
rule that is not pure syntax (framing conflicts, limits, versions, keep-alive)
is enforced here, so both parsers are held to it.

This file is both the readable reference and the source of the compiled hot
path: ``setup.py`` compiles it with Cython into ``fastserve._speedups.http1``,
where ``fastserve/_speedups/http1.pxd`` makes the class a typed ``cdef``
class. Without a compiler it runs as it is.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from fastserve.access_log import UNPARSED_SCOPE, log_access
from fastserve.asgi import decode_path, escape_for_log, split_target
from fastserve.errors import PipelineFull, RequestError
from fastserve.protocols import http1_cycle, http1_head, http1_replay, http1_switch
from fastserve.protocols.cycle import ASGI_VERSION, RESPONSE_EXTENSIONS, TASK_NAME
from fastserve.protocols.h11_parser import H11Parser
from fastserve.protocols.http1_cycle import ZERO_COPY_BODY
from fastserve.protocols.lingering import end_output
from fastserve.protocols.refusals import (
    error_body_size,
    error_response,
    error_status,
    pipeline_full,
    refused_method,
    request_error,
    switch_rest,
    unexpected_error,
)
from fastserve.protocols.websocket_handshake import HandshakeError
from fastserve.sockets import socket_address

if TYPE_CHECKING:
    from fastserve import state as server_state
    from fastserve.asgi import Scope
    from fastserve.proxy import Address

    Buffer = bytes | bytearray | memoryview

error_logger = logging.getLogger("fastserve.error")

# Unread request bytes (body of the current request plus pipelined requests)
# above which reading from the socket pauses, and below which it resumes.
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
# Parsed requests that may wait behind the one being answered. The request
# after them is not parsed: its bytes are parked until one of them is answered.
MAX_PIPELINED = 32
# What the connection's one deadline is for (``deadline_for``), named where it
# is set; check_deadline acts on it. (A closed connection's deadline is its
# lingering close's: see close and lingering.end_output.)
NO_DEADLINE = 0
HEAD_DEADLINE = 1  # --timeout-request-header: the rest of the head
BODY_DEADLINE = 2  # --timeout-request-body: the body's next bytes
IDLE_DEADLINE = 3  # --timeout-keep-alive: the next request
FIRST_REQUEST_DEADLINE = 4  # graceful shutdown: a new connection's first request (FIRST_REQUEST_GRACE)
# What parse's except clause found: llhttp refused a method (see http1_replay.parse_extension_method).
REFUSED_METHOD = object()

# At shutdown, how long a new connection may take to send its first request.
FIRST_REQUEST_GRACE = 1.0
# The ASGI response extensions every request is offered (early hints on HTTP/1.1
# only: an HTTP/1.0 client may not expect an informational response).
RESPONSE_EXTENSIONS_11 = dict(RESPONSE_EXTENSIONS)
RESPONSE_EXTENSIONS_10 = {name: {} for name in RESPONSE_EXTENSIONS if name != "http.response.early_hint"}
FRAGMENT_BYTE = ord("#")
ESCAPE_BYTE = ord("%")


class HTTP1Protocol(http1_head.RequestHead):
    """One HTTP/1.1 connection (asyncio.Protocol and BufferedProtocol interfaces)."""

    def __init__(self, state: server_state.ServerState) -> None:
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
        self.deadline_for = NO_DEADLINE
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
        # has been through needs (see http1_replay.replay_base): only with httptools.
        self.begun = 0
        self.replays = False
        self.replay = None
        self.replay_begun = 0
        # Body bytes the request being parsed still lacks; -1 and below: chunked.
        self.body_left = 0
        # Bytes of a chunked body's framing and trailers since its last body byte.
        self.framing_bytes = 0
        # Received bytes not parsed yet because the pipeline is full (see http1_replay.park).
        self.parked = None
        # A WebSocket handshake waiting for its turn: (scope, handshake), and the bytes after it.
        self.upgrade_to = None
        self.upgrade_bytes = b""
        # The connection's first bytes while they may be the HTTP/2 preface (see http1_switch.take_http2_preface).
        self.preface_bytes = b""
        # Header lines an error answer carries (426 names the WebSocket version spoken).
        self.error_lines = b""
        self.reset_request_head()
        self.release_head()

    # asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
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
                http1_switch.switch_to_http2(self, b"")
                return
        state.connections.add(self)
        self.deadline_for = IDLE_DEADLINE
        self.deadline = state.now + state.timeout_keep_alive
        # A task factory (one an app sets at startup, say) is honoured; without
        # one, requests make their Tasks directly (see start_cycle).
        self.plain_tasks = state.loop.get_task_factory() is None
        if state.shutting_down:
            # Accepted just before the listener closed: the client means to send
            # a request, and gets it answered (see shutdown) rather than a reset.
            self.shutdown()

    def set_addresses(self, server: Address | None, client: Address | None, scheme: str | None) -> None:
        """The connection's addresses, and scheme unless None: the socket's, or a PROXY header's."""
        state = self.state
        self.server = server
        self.client = client
        if scheme is not None:
            self.scheme = scheme
        self.client_label = "" if client is None else f"{client[0]}:{client[1]}"
        if state.proxy is not None:
            self.trusted_proxy = state.proxy.trusts_peer(client)

    def connection_lost(self, exc: BaseException | None) -> None:
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

    def eof_received(self) -> bool | None:
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
        self.deadline_for = NO_DEADLINE
        self.deadline = 0.0
        return True

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    # asyncio.BufferedProtocol, which uvloop prefers when it is offered: the
    # loop reads into the server's shared receive buffer instead of copying each
    # read into a new bytes object, and the parser consumes it at once.

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.state.receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.feed(self.state.receive_buffer[:nbytes])

    def feed(self, data: Buffer) -> None:
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
            data = http1_switch.take_http2_preface(self, data)
            if data is None:
                return
        self.parse(data)
        cycle = self.cycle
        if cycle is not None and cycle.task is None and not cycle.running and not cycle.complete:
            self.start_cycle(cycle, True)

    def parse(self, data: Buffer) -> None:
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
            base = http1_replay.replay_base(self, data, continuing, body_left, in_head, begun)
            if stop is REFUSED_METHOD:
                http1_replay.parse_extension_method(self, base)
            else:
                http1_replay.park(self, stop, base)
            return
        if self.parser is not parser:
            return  # an extension-method request ended in this read, and the rest went to a new parser
        if self.in_head:
            if in_head and begun == self.begun:
                self.head_bytes += len(data)  # the head went on through the whole read
            else:
                self.head_bytes = http1_replay.head_bytes_begun(self, data, continuing, body_left, in_head, begun)
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
            http1_replay.keep_for_replay(
                self, http1_replay.replay_base(self, data, continuing, body_left, in_head, begun)
            )
        elif self.replay is not None:
            self.replay = None

    def resume_fast_parsing(self, rest: bytes) -> None:
        """An extension-method request ended in a read (the h11 adapter says): llhttp parses what follows."""
        http1_replay.resume_fast_parsing(self, rest)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # Parser callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        if len(self.pipeline) >= MAX_PIPELINED:
            raise PipelineFull
        self.begun += 1
        self.reset_request_head()
        self.in_head = True
        self.deadline_for = HEAD_DEADLINE
        self.deadline = self.state.now + self.state.timeout_request_header

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.deadline_for = NO_DEADLINE
        self.deadline = 0.0
        parser = self.parser
        version = parser.get_http_version()
        method = self.check_head(parser.get_method(), version)
        state = self.state
        if self.body_left and state.timeout_request_body:
            self.deadline_for = BODY_DEADLINE
            self.deadline = state.now + state.timeout_request_body
        if self.websocket_upgrade and state.websocket is not None:
            http1_switch.await_switch_to_websocket(self, method, version)
            return
        if self.upgrade and state.http2 is not None and state.http2.h2c_upgrade:
            if http1_switch.await_switch_to_http2(self, method, version):
                return
        http11 = version == "1.1"
        if http11:
            keep_alive = not self.connection_close
        else:
            keep_alive = self.connection_keep_alive and not self.connection_close
        if self.upgrade or method == "CONNECT":
            keep_alive = False
            if self.upgrade:
                http1_switch.log_upgrade_not_taken(self)
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

    def connection_scope(self) -> Scope:
        """A new scope with what is the same for every request on this connection (see asgi.build_scope_template)."""
        scope = self.state.scope_template.copy()
        scope["scheme"] = self.scheme
        scope["server"] = self.server
        scope["client"] = self.client
        return scope

    def build_scope(self, method: str, version: str, http11: bool) -> Scope:
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

    def offered_extensions(self, http11: bool) -> dict[str, Any]:
        """A new dict of the extensions this connection offers, for its next requests to share."""
        extensions = dict(RESPONSE_EXTENSIONS_11 if http11 else RESPONSE_EXTENSIONS_10)
        if self.tls is not None:
            extensions["tls"] = self.tls
        if http11:
            self.extensions_11 = extensions
        else:
            self.extensions_10 = extensions
        return extensions

    def on_body(self, body: bytes) -> None:
        self.body_left -= len(body)
        if self.deadline_for == BODY_DEADLINE:
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

    def on_message_complete(self) -> None:
        cycle = self.parsing
        self.parsing = None
        if cycle is not None:
            cycle.body_complete = True
            if cycle is self.cycle:
                cycle.wake()
        self.deadline_for = NO_DEADLINE
        self.deadline = 0.0

    # Flow control -------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def maybe_resume_reading(self) -> None:
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
            if self.deadline_for == BODY_DEADLINE:
                # The body timeout measures the client, not the time reading was paused.
                self.deadline = self.state.now + self.state.timeout_request_body
            self.transport.resume_reading()

    async def drain(self):
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.state.loop.create_future()
        await waiter

    # Request cycles -----------------------------------------------------

    def new_cycle(self, scope: Scope, http11: bool, keep_alive: bool) -> http1_cycle.RequestCycle:
        """The cycle of a request whose head is in (made by ``__new__`` and ``setup``: see RequestCycle.setup)."""
        cycle = http1_cycle.RequestCycle.__new__(http1_cycle.RequestCycle)
        cycle.setup(self, scope, http11, keep_alive, self.expect_continue and http11, self.te_trailers and http11)
        return cycle

    def start_cycle(self, cycle: http1_cycle.RequestCycle, eager: bool) -> None:
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

    def cycle_done(self, cycle: http1_cycle.RequestCycle) -> None:
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
                http1_switch.switch_protocols(self)
            return
        elif self.parser is None:
            self.close()  # parsing stopped (the client half-closed, say): nothing more to answer
            return
        elif self.parsing is None and not self.in_head:
            # (A head on its way keeps its own, header deadline.)
            self.deadline_for = IDLE_DEADLINE
            self.deadline = self.state.now + self.state.timeout_keep_alive
        self.maybe_resume_reading()

    def on_parse_error(self, exc: BaseException, data: Buffer | None = None) -> None:
        """The parser stopped at ``exc`` while parsing ``data``: a request to switch protocols, or an error."""
        rest = switch_rest(exc, data)
        if rest is not None:
            http1_switch.protocol_switch(self, rest)
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

    def refuse(self, status: int) -> None:
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

    def drop_parsing(self) -> None:
        """Forget the pipelined request being parsed: it will not be answered."""
        broken = self.parsing
        if broken is not None:
            if broken in self.pipeline:  # (graceful shutdown may have cleared it)
                self.pipeline.remove(broken)
            self.buffered -= broken.body_size
            self.parsing = None

    def check_deadline(self, now: float) -> None:
        """Called by the server's once-a-second sweep: the one deadline that runs, if it has passed.

        What it is for (``deadline_for``) was named where it was set: the head's
        (--timeout-request-header) and the body's between two reads
        (--timeout-request-body) get 408; the idle connection's
        (--timeout-keep-alive) and a first request's at shutdown close it.
        """
        if self.closed:
            if self.lingering and now >= self.deadline:
                self.close()  # the end of a lingering close
            return
        if self.deadline and now >= self.deadline:
            kind = self.deadline_for
            if kind == BODY_DEADLINE and (
                self.read_paused or (self.parsing is self.cycle and self.parsing.expect_continue)
            ):
                # The server is not reading, or the client waits for its 100 Continue.
                self.deadline = now + self.state.timeout_request_body
                return
            self.deadline_for = NO_DEADLINE
            self.deadline = 0.0
            if kind == HEAD_DEADLINE:
                error_logger.debug("Request header timeout from %s", self.client_label)
                self.refuse(408)
            elif kind == BODY_DEADLINE:
                error_logger.debug("Request body timeout from %s", self.client_label)
                self.refuse(408)
            else:
                self.close()
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

    def shutdown(self) -> None:
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
                    self.deadline_for = FIRST_REQUEST_DEADLINE
                    self.deadline = limit

    def close(self, linger: bool = False) -> None:
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

    def write(self, data: bytes) -> None:
        if self.held_output:
            self.held_output.append(data)
            self.flush()
        else:
            self.transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        if self.held_output:
            parts = self.held_output + parts
            self.held_output = None
            self.held_size = 0
        self.transport.writelines(parts)

    def hold(self, parts: list[bytes], limit: int) -> None:
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

    def flush_when_idle(self) -> None:
        self.flush_handle = None
        cycle = self.cycle
        if self.held_output and cycle is not None and not cycle.running and not self.closed:
            # The next app has not had its first step yet: let it run first.
            self.flush_handle = self.state.loop.call_soon(self.flush_when_idle)
        else:
            self.flush()

    def flush(self) -> None:
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

    def send_error(self, status: int, cycle: http1_cycle.RequestCycle | None = None) -> None:
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

    def log_unparsed(self, status: int, size: int) -> None:
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

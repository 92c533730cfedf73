"""HTTP/2 (RFC 9113): the connection, whose streams are ASGI request cycles, over an engine that does the framing.

The HTTP/1.1 protocol hands a connection over (see http1_switch.switch_to_http2)
when it begins with the HTTP/2 connection preface (h2c with prior knowledge) or
when TLS negotiated "h2" by ALPN. From then on this protocol owns the transport.
The engine (fastserve.protocols.http2_h2) turns bytes into events and frames
what is sent; what is here is the same whatever the engine: scopes, the
``receive``/``send`` of each stream, flow control as the app consumes and
sends, the access log, deadlines and shutdown. Each stream's ``receive`` and
``send`` are in ``http2_stream`` (compiled into ``fastserve._speedups.http2_stream``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from time import perf_counter
from typing import Any, ClassVar

from fastserve.asgi import (
    decode_path,
    split_target,
)
from fastserve.compiled import compiled
from fastserve.errors import RequestError
from fastserve.protocols import http2_h2, http2_stream
from fastserve.protocols.cycle import ASGI_VERSION, RESPONSE_EXTENSIONS, TASK_NAME
from fastserve.protocols.http2_h2 import DATA, END, GOAWAY, HEADERS, PING_ACK, RESET, WINDOW
from fastserve.protocols.lingering import end_output
from fastserve.proxy import FORWARDING_HEADER_NAMES

error_logger = logging.getLogger("fastserve.error")


# The libnghttp2 engine, or None (not built, or FASTSERVE_NO_EXTENSIONS set).
COMPILED_ENGINE = getattr(compiled("nghttp2"), "NGHTTP2Engine", None)

# The connection's receive window: what the apps of all its streams may have
# received and not yet read, at most (each stream's is the initial window).
CONNECTION_WINDOW = 1024 * 1024
# Streams a client may reset (rapid reset, CVE-2023-44487): a bucket of 1000,
# refilled by 33 a second (libnghttp2's defaults, so that both engines draw
# the line in the same place). Empty: GOAWAY INTERNAL_ERROR, libnghttp2's word.
RESETS = (1000, 33)
# DATA frames that carry nothing and do not end the stream (CVE-2019-9518):
# they cost the server work and the client nothing.
EMPTY_FRAMES = (1000, 100)
# Streams the server resets (MadeYouReset, CVE-2025-8671: a client provoking
# resets to free stream slots while the work goes on): RESETS again.
SERVER_RESETS = RESETS
# What a keep-alive PING carries (the client echoes it back).
PING_PAYLOAD = b"fastserv"


class Budget:
    """What a client may do this often: ``burst`` at once, ``rate`` more each second (the sweep refills it)."""

    def __init__(self, burst_and_rate: tuple[int, int]) -> None:
        self.burst, self.rate = burst_and_rate
        self.left = self.burst

    def spend(self) -> bool:
        """Whether there was one left."""
        self.left -= 1
        return self.left >= 0

    def refill(self) -> None:
        self.left = min(self.burst, self.left + self.rate)


@dataclass(frozen=True)
class HTTP2Settings:
    """What serves HTTP/2, from the --h2-* options."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 64 * 1024
    # Longest a response may wait for the client's window to open or for the
    # client to read (zero-window slow read, CVE-2019-9511/9517).
    stall_timeout: float = 30.0
    # Whether an HTTP/1.1 request with "Upgrade: h2c" is taken up (--h2c-upgrade).
    h2c_upgrade: bool = False
    # Keep-alive: a PING once the client has sent nothing for this many seconds
    # (None: never), and how long it has to answer before the connection closes.
    ping_interval: float | None = None
    ping_timeout: float = 20.0
    # --h2-engine: "h2" is the readable engine even where the compiled one was
    # built; "auto" and "nghttp2" (which Config has checked was built) are engine_class.
    engine_choice: str = "auto"
    # The engine "auto" gives every connection: the libnghttp2 binding where it was built.
    engine_class: ClassVar[Any] = COMPILED_ENGINE or http2_h2.H2Engine

    @property
    def connection_window_size(self) -> int:
        return max(CONNECTION_WINDOW, self.initial_window_size)

    def protocol(
        self, state: Any, server: Any, client: Any, scheme: str, tls: Any, client_label: str, upgrade: Any = None
    ) -> HTTP2Protocol:
        """The protocol a connection is handed to; ``upgrade``: (scope, HTTP2-Settings) of an h2c upgrade.

        It is the compiled twin of HTTP2Protocol where it was built (chosen
        with the HTTP/1.1 protocol, in fastserve.protocols).
        """
        from fastserve.protocols import compiled_http2

        protocol_class = HTTP2Protocol if compiled_http2 is None else compiled_http2.HTTP2Protocol
        return protocol_class(state, self, server, client, scheme, tls, client_label, upgrade)

    @property
    def engine_name(self) -> str:
        return "h2" if self.engine_choice == "h2" else self.engine_class.name

    def engine(self) -> Any:
        if self.engine_choice == "h2":
            return http2_h2.H2Engine(self)
        return self.engine_class(self)


class HTTP2Protocol:
    """One HTTP/2 connection: its streams, their apps, and the engine that frames them."""

    def __init__(
        self,
        state: Any,
        settings: HTTP2Settings,
        server: Any,
        client: Any,
        scheme: str,
        tls: Any,
        client_label: str,
        upgrade: Any = None,
    ) -> None:
        self.state = state
        self.upgrade = upgrade
        self.settings = settings
        self.engine = settings.engine()
        self.server = server
        self.client = client
        self.scheme = scheme
        self.tls = tls
        self.client_label = client_label
        self.trusted_proxy = state.proxy is not None and state.proxy.trusts_peer(client)
        self.transport: Any = None
        self.streams: dict[int, http2_stream.Stream] = {}
        self.closed = False
        self.going_away = False  # GOAWAY sent or received: no new streams
        self.write_paused = False
        self.write_paused_at = 0.0
        self.read_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        # Whether the loop makes plain asyncio Tasks (no task factory), which may start eagerly.
        self.plain_tasks = state.loop.get_task_factory() is None
        # The extensions dict the requests of this connection share while no app changes it.
        self.extensions: dict[str, Any] | None = None
        self.flush_handle: asyncio.Handle | None = None
        self.deadline = 0.0
        self.heard_at = 0.0  # when the client last sent something (for the keep-alive PING)
        self.ping_sent_at = 0.0  # when the unanswered keep-alive PING left (0.0: none is out)
        # Apps running for this connection's streams, reset ones included: at
        # most max_concurrent_streams, so that resetting a stream frees nothing.
        self.running = 0
        self.resets = Budget(RESETS)
        self.empty_frames = Budget(EMPTY_FRAMES)
        self.server_resets = Budget(SERVER_RESETS)

    def start(self, transport: Any, read_paused: bool, early_bytes: bytes) -> None:
        """Take over the transport (already set to this protocol) with the bytes read so far."""
        self.transport = transport
        self.state.connections.add(self)
        self.deadline = self.state.now + self.state.timeout_keep_alive
        self.heard_at = self.state.now
        if self.upgrade is None:
            self.engine.start()
        else:
            self.start_upgraded(*self.upgrade)
            self.upgrade = None
        if early_bytes:
            self.data_received(early_bytes)
        else:
            self.flush()
        if read_paused and not self.closed:
            transport.resume_reading()
        if self.state.shutting_down:
            self.shutdown()

    # asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.heard_at = self.state.now
        try:
            # (Events come frame by frame: a stream refused here is closed
            # before the engine reads the next frame, and counts against nothing.)
            for event in self.engine.feed(data):
                self.take_event(event)
                if self.closed:
                    return
        except http2_h2.ConnectionError_ as exc:
            error_logger.debug("HTTP/2 protocol error from %s: %s", self.client_label, exc)
            self.close(linger=True)
            return
        self.flush()
        if self.engine.finished():
            # The engine ended the connection itself (a GOAWAY for an error it found).
            error_logger.debug("HTTP/2 connection from %s ended by the engine", self.client_label)
            self.close(linger=True)
            return
        if self.going_away and not self.streams:
            self.close()
        elif self.write_paused and not self.read_paused:
            # The client does not read what is sent (answers to its PINGs and
            # SETTINGS among it): read nothing more from it until it does.
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # An HTTP/2 client ends with GOAWAY; an end of input is the client gone
        # (or done draining a lingering close): the transport closes.
        return None

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM from the server, counted: a client that provokes too many loses the connection."""
        if self.closed:
            return
        if not self.server_resets.spend():
            self.calm_down("too many streams the server had to reset")
            return
        self.engine.reset(stream_id, error_code)

    def take_event(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        stream = self.streams.get(event[1])
        if kind == HEADERS:
            self.open_stream(event[1], event[2], event[3])
        elif kind == DATA:
            if not event[3] and not event[4] and not self.empty_frames.spend():
                self.calm_down("too many empty DATA frames")
            elif stream is None:
                self.engine.consumed(event[1], event[3])  # nobody reads it: the window reopens
            else:
                stream.body_received(event[2], event[3], event[4])
        elif kind == END:
            if stream is not None:
                stream.body_ended()
        elif kind == RESET:
            if not self.resets.spend():
                # (INTERNAL_ERROR, as libnghttp2 says it when its own limit, the same one, is reached first)
                self.calm_down("too many streams reset", http2_h2.INTERNAL_ERROR)
            elif stream is not None:
                stream.was_reset()
        elif kind == WINDOW:
            if event[1] == 0:
                for each in list(self.streams.values()):
                    each.wake()
            elif stream is not None:
                stream.wake()
        elif kind == GOAWAY:
            # The client is closing. h2 takes no more frames to send once it has
            # its GOAWAY, so streams in flight cannot finish: they hear
            # http.disconnect, and the connection closes.
            self.going_away = True
            self.close()
        elif kind == PING_ACK:
            self.ping_sent_at = 0.0

    def start_upgraded(self, scope: dict[str, Any], settings: bytes) -> None:
        """After an h2c upgrade: the client's settings from its header, and its request served as stream 1."""
        self.engine.start_upgraded(settings)
        stream_scope = self.connection_scope()
        for key in ("method", "path", "raw_path", "query_string", "headers", "client", "scheme"):
            stream_scope[key] = scope[key]
        stream = http2_stream.Stream.__new__(http2_stream.Stream)  # (and setup: see Stream.setup)
        stream.setup(self, 1, True)
        self.start_stream(stream, stream_scope)

    def calm_down(self, why: str, error_code: int = http2_h2.ENHANCE_YOUR_CALM) -> None:
        """A client abusing the protocol: GOAWAY ENHANCE_YOUR_CALM, and the connection closes."""
        if self.closed:
            return
        error_logger.warning("HTTP/2 connection from %s closed: %s", self.client_label, why)
        self.engine.goaway(error_code)
        self.close(linger=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.connection_lost()
        self.streams.clear()
        self.wake_drainers()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_at = self.state.now

    def resume_writing(self) -> None:
        self.write_paused = False
        self.wake_drainers()
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def wake_drainers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        while self.write_paused and not self.closed:
            waiter = self.state.loop.create_future()
            self.drain_waiters.append(waiter)
            await waiter

    # Streams ----------------------------------------------------------------

    def open_stream(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        if self.going_away or self.running >= self.settings.max_concurrent_streams:
            self.reset_stream(stream_id, http2_h2.REFUSED_STREAM)
            return
        stream = http2_stream.Stream.__new__(http2_stream.Stream)
        stream.setup(self, stream_id, ended)
        try:
            scope = self.build_scope(headers)
        except RequestError as exc:
            error_logger.warning("Invalid HTTP/2 request from %s: %s", self.client_label, exc)
            self.streams[stream_id] = stream
            stream.scope = self.error_scope()
            stream.answer_error(exc.status)
            return
        self.start_stream(stream, scope)

    def start_stream(self, stream: http2_stream.Stream, scope: dict[str, Any]) -> None:
        """Run the app for a stream whose request head is in."""
        self.streams[stream.stream_id] = stream
        self.deadline = 0.0
        stream.scope = scope
        stream.started_at = perf_counter()
        self.running += 1
        if not stream.start_app(True, self.plain_tasks, TASK_NAME):
            self.running -= 1
            stream.answer_error(503)

    def stream_done(self, stream: http2_stream.Stream) -> None:
        """The stream's response is complete (or the stream gone)."""
        if self.streams.pop(stream.stream_id, None) is None:
            return
        if not self.streams:
            if self.going_away:
                self.close()
            else:
                self.deadline = self.state.now + self.state.timeout_keep_alive

    def build_scope(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        """The scope of a request whose head the engine has checked (pseudo-header fields first, once each)."""
        method = target = authority = None
        fields = []
        forwarding = None
        host = None
        cookies = None
        for name, value in headers:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    target = value
                elif name == b":authority":
                    authority = value
                continue
            if name == b"host":
                if host is not None:
                    raise RequestError(400, "Repeated Host header")
                host = value
                continue
            if name == b"cookie":
                cookies = cookies or []
                cookies.append(value)
                continue
            if name in FORWARDING_HEADER_NAMES and self.trusted_proxy:
                forwarding = forwarding or []
                forwarding.append((name, value))
            fields.append((name, value))
        if cookies is not None:
            # Clients split Cookie into crumbs for HPACK; an application gets
            # them joined again, as one field (RFC 9113 8.2.3).
            fields.append((b"cookie", b"; ".join(cookies)))
        if target is None:
            raise RequestError(501, "CONNECT is not supported")
        if authority is not None and host is not None and host != authority:
            raise RequestError(400, "Host header and :authority disagree")
        host = authority if authority is not None else host
        if host is not None:
            fields.insert(0, (b"host", host))
        raw_path, query_string = split_target(target)
        scope = self.connection_scope()
        scope["method"] = method.decode("ascii")
        scope["path"] = decode_path(raw_path)
        scope["raw_path"] = raw_path
        scope["query_string"] = query_string
        scope["headers"] = fields
        if forwarding is not None:
            scope["client"], scope["scheme"] = self.state.proxy.resolve(forwarding, scope["client"], scope["scheme"])
        return scope

    def connection_scope(self) -> dict[str, Any]:
        """A scope with what every request of this connection shares (the scheme is the connection's)."""
        scope = self.state.scope_template.copy()
        scope["asgi"] = ASGI_VERSION.copy()
        scope["http_version"] = "2"
        scope["scheme"] = self.scheme
        scope["server"] = self.server
        scope["client"] = self.client
        # One extensions dict serves the streams of a connection while no app
        # changes it (as on HTTP/1.1); one that gained or lost a key is left to its request.
        extensions = self.extensions
        if extensions is None or len(extensions) != len(RESPONSE_EXTENSIONS) + (self.tls is not None):
            extensions = self.extensions = dict(RESPONSE_EXTENSIONS)
            if self.tls is not None:
                extensions["tls"] = self.tls
        scope["extensions"] = extensions
        scope["state"] = self.state.lifespan_state.copy()
        return scope

    def error_scope(self) -> dict[str, Any]:
        """What the access log says of a request refused before it had a scope."""
        scope = self.connection_scope()
        scope.update(method="-", path="-", raw_path=b"-", query_string=b"", headers=[])
        return scope

    # Deadlines and closing ----------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """The sweep, once a second: the reset budget, stalled responses, an idle connection's keep-alive timeout."""
        if self.closed:
            if now >= self.deadline:  # the end of a lingering close
                self.transport.close()
            return
        for budget in (self.resets, self.empty_frames, self.server_resets):
            budget.refill()
        stall_limit = now - self.settings.stall_timeout
        if self.write_paused and self.write_paused_at < stall_limit:
            error_logger.debug("HTTP/2 client %s reads nothing: connection closed", self.client_label)
            self.close()
            return
        for stream in list(self.streams.values()):
            if 0.0 < stream.stalled_at < stall_limit:
                error_logger.debug("HTTP/2 stream %d stalled on a closed window: reset", stream.stream_id)
                stream.reset(http2_h2.CANCEL)
        if self.settings.ping_interval is not None and not self.keep_alive_ping(now):
            return
        self.flush()
        if self.deadline and now >= self.deadline and not self.streams:
            self.deadline = 0.0
            self.shutdown()

    def keep_alive_ping(self, now: float) -> bool:
        """PING a client that has been silent for --h2-ping-interval; whether it is still deemed alive.

        One that leaves the PING unanswered for --h2-ping-timeout is gone (a
        peer that vanished without a FIN, a dead NAT mapping): the connection
        closes, and the apps of its streams hear http.disconnect.
        """
        if self.ping_sent_at:
            if now - self.ping_sent_at < self.settings.ping_timeout:
                return True
            error_logger.debug("HTTP/2 client %s did not answer PING: connection closed", self.client_label)
            self.close()
            return False
        if now - self.heard_at >= self.settings.ping_interval:
            self.engine.ping(PING_PAYLOAD)
            self.ping_sent_at = now
        return True

    def shutdown(self) -> None:
        """Graceful: GOAWAY with the last stream seen; the streams in flight finish, then the connection closes."""
        if self.closed:
            return
        self.going_away = True
        if not self.engine.goaway_sent:
            self.engine.goaway()
            self.flush()
        if not self.streams:
            self.close()

    def close(self, linger: bool = False) -> None:
        """Close the connection; with ``linger``, after an error GOAWAY, output ends first
        (``lingering.end_output``: a client still sending would otherwise get a reset that may
        lose the GOAWAY that says why)."""
        if self.closed:
            if not linger:
                self.transport.close()  # (ends a lingering close: the server is shutting down, say)
            return
        self.flush()
        self.closed = True
        for stream in list(self.streams.values()):
            stream.connection_lost()  # (the engine takes no frames now: send() raises)
        end_output(self, linger)

    def flush_soon(self) -> None:
        """Write the queued frames once the apps that run in this loop iteration have had their turn.

        Streams answered together leave in one write (one syscall), not one each.
        """
        if self.flush_handle is None and not self.closed:
            self.flush_handle = self.state.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the frames the engine has queued."""
        self.flush_handle = None
        if self.closed:
            return
        data = self.engine.output()
        if data:
            self.transport.write(data)

"""The readable HTTP/2 engine: framing, HPACK and flow control by the h2 library.

An engine turns received bytes into a few kinds of events (the tuples below)
and frames what the stream layer (fastserve.protocols.http2) sends. The
compiled engine on libnghttp2 is to offer the same methods and events, so
that the stream layer, and the tests, serve both alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hyperframe.frame

from fastserve.protocols.http1_switch import HTTP2_PREFACE

# Event kinds: (kind, stream_id, ...)
HEADERS = 1  # (HEADERS, stream_id, headers, end_stream): a request's head
DATA = 2  # (DATA, stream_id, data, flow_controlled_length, end_stream)
END = 3  # (END, stream_id): the request body is complete
RESET = 4  # (RESET, stream_id, error_code): the client reset the stream
WINDOW = 5  # (WINDOW, stream_id): the client opened a window (0: the connection's, or every stream's)
GOAWAY = 6  # (GOAWAY, last_stream_id): the client is closing the connection
PING_ACK = 7  # (PING_ACK, 0): the client answered the server's PING

HEADERS_FRAME = 0x1
CONTINUATION_FRAME = 0x9
END_HEADERS = 0x4
# What a header block may have on the wire beyond the decoded limit
# (--h2-max-header-list-size): HPACK's literal encodings cost a few bytes a field.
HEADER_BLOCK_SLACK = 16 * 1024
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
INTERNAL_ERROR = h2.errors.ErrorCodes.INTERNAL_ERROR
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
CANCEL = h2.errors.ErrorCodes.CANCEL
FRAME_SIZE_ERROR = h2.errors.ErrorCodes.FRAME_SIZE_ERROR
ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
COMPRESSION_ERROR = h2.errors.ErrorCodes.COMPRESSION_ERROR
# A header block h2 could not decode: the HPACK errors h2 turns into a ProtocolError (see its _decode_headers).
HPACK_FAILURES = (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError)
# The GOAWAY h2 queues when it ends a connection: its frame header (8 bytes of payload, type 7, stream 0).
GOAWAY_FRAME_HEADER = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"


class ConnectionError_(Exception):
    """The client broke the protocol: the engine has queued its GOAWAY; the connection closes.

    Raised from inside the libnghttp2 engine's callbacks, ``error_code`` is the
    GOAWAY's code (ENHANCE_YOUR_CALM for a limit, PROTOCOL_ERROR for a rule).
    """

    def __init__(self, message: str, error_code: int = ENHANCE_YOUR_CALM) -> None:
        super().__init__(message)
        self.error_code = error_code


class HeaderBlockMeter:
    """A header block's size on the wire while it goes on in CONTINUATION frames, for either engine.

    Told of each HEADERS and CONTINUATION frame as its header arrives (before
    the engine holds its payload), it raises ConnectionError_ once a block
    passes --h2-max-header-list-size + HEADER_BLOCK_SLACK: a CONTINUATION flood
    ends before anything of it is decoded.
    """

    def __init__(self, settings: Any) -> None:
        self.limit = settings.max_header_list_size + HEADER_BLOCK_SLACK
        self.block = 0

    def frame(self, kind: int, flags: int, length: int) -> None:
        self.block = length if kind == HEADERS_FRAME else self.block + length
        if self.block > self.limit:
            raise ConnectionError_("header block too large")
        if flags & END_HEADERS:
            self.block = 0


class H2Engine:
    """One server-side HTTP/2 connection's framing, on h2."""

    name = "h2"

    def __init__(self, settings: Any) -> None:
        # Inbound fields are checked by h2 (RFC 9113 8.2); outbound ones the
        # stream layer has checked and lowercased already (asgi.header_key,
        # check_header_value), so h2 does not do it again.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            # (Cookie crumbs are joined by the stream layer, for both engines.)
            normalize_inbound_headers=False,
        )
        self.connection = h2.connection.H2Connection(config=config)
        self.connection.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                # One stream too many is a connection error (PROTOCOL_ERROR), as
                # with libnghttp2 once the client has acknowledged the limit.
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
            },
        )
        self.connection_window = settings.connection_window_size
        self.goaway_sent = False
        self.max_frame_size = settings.max_frame_size
        self.meter = HeaderBlockMeter(settings)
        # Received bytes not yet handed to h2 (less than a frame), and how much
        # of the client's preface is still to come.
        self.received = b""
        self.preface_left = len(HTTP2_PREFACE)
        # Frames of ours queued behind h2's (a graceful GOAWAY: see goaway).
        self.queued = b""

    def start(self) -> None:
        """The server's preface (its SETTINGS), and the connection's receive window opened."""
        self.connection.initiate_connection()
        self.open_window()

    def open_window(self) -> None:
        """The connection's receive window opened to its size (it starts at 65,535)."""
        opening = self.connection_window - 65535
        if opening > 0:
            self.connection.increment_flow_control_window(opening)

    def start_upgraded(self, settings: bytes) -> None:
        """As start, after an h2c upgrade: the client's HTTP2-Settings taken, its request on stream 1."""
        self.connection.initiate_upgrade_connection(settings)
        self.open_window()

    def feed(self, data: bytes) -> Iterator[tuple[Any, ...]]:
        """The events ``data`` completes, one frame at a time; ConnectionError_ if it breaks the protocol.

        h2 would take every frame of a read at once, counting streams open that
        the stream layer refuses (see HTTP2Protocol.open_stream); fed a frame at
        a time, it sees each refusal before the next frame.
        """
        data = self.received + bytes(data) if self.received else bytes(data)
        view = memoryview(data)
        start = 0
        end = len(data)
        if self.preface_left:
            taken = min(self.preface_left, end)
            self.preface_left -= taken
            yield from self.receive(view[:taken])
            start = taken
        while end - start >= 9:
            length = int.from_bytes(view[start : start + 3], "big")
            if length > self.max_frame_size:
                # (h2 would hold the whole frame, up to 16 MiB, before it refused it.)
                self.goaway(FRAME_SIZE_ERROR)
                raise ConnectionError_(f"a frame of {length} bytes, above the maximum frame size")
            if end - start < 9 + length:
                break
            kind = view[start + 3]
            if kind == HEADERS_FRAME or kind == CONTINUATION_FRAME:
                try:
                    self.meter.frame(kind, view[start + 4], length)
                except ConnectionError_:
                    self.goaway(ENHANCE_YOUR_CALM)
                    raise
            yield from self.receive(view[start : start + 9 + length])
            start += 9 + length
        self.received = data[start:]

    def receive(self, frame: memoryview) -> Iterator[tuple[Any, ...]]:
        try:
            events = self.connection.receive_data(bytes(frame))
        except h2.exceptions.ProtocolError as exc:
            # h2 queued a GOAWAY with the error's code for most errors; make sure of one.
            if self.connection.state_machine.state != h2.connection.ConnectionState.CLOSED:
                self.goaway(getattr(exc, "error_code", PROTOCOL_ERROR))
            elif type(exc) is h2.exceptions.ProtocolError and isinstance(exc.__cause__, HPACK_FAILURES):
                # (not an oversized list: h2's DenialOfServiceError, ENHANCE_YOUR_CALM, is right as it is)
                self.recode_goaway(COMPRESSION_ERROR)
            raise ConnectionError_(str(exc) or type(exc).__name__) from None
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                yield (HEADERS, event.stream_id, event.headers, event.stream_ended is not None)
            elif isinstance(event, h2.events.DataReceived):
                ended = event.stream_ended is not None
                yield (DATA, event.stream_id, event.data, event.flow_controlled_length, ended)
            elif isinstance(event, h2.events.StreamEnded):
                yield (END, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                yield (RESET, event.stream_id, event.error_code)
            elif isinstance(event, h2.events.WindowUpdated):
                yield (WINDOW, event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                yield (WINDOW, 0)  # a new initial window or frame size may let a stream go on
            elif isinstance(event, h2.events.ConnectionTerminated):
                yield (GOAWAY, event.last_stream_id or 0)
            elif isinstance(event, h2.events.PingAckReceived):
                yield (PING_ACK, 0)
            # (Request trailers have no place in ASGI; h2 reports their END_STREAM as StreamEnded.)

    def finished(self) -> bool:
        """Whether the connection is over for the engine (it has sent or received its last frame)."""
        return self.connection.state_machine.state == h2.connection.ConnectionState.CLOSED

    def output(self) -> bytes:
        """Frames queued since the last call."""
        if self.queued:
            data, self.queued = self.queued + self.connection.data_to_send(), b""
            return data
        return self.connection.data_to_send()

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.connection.send_headers(stream_id, headers, end_stream=end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.connection.send_data(stream_id, data, end_stream=end_stream)

    def window(self, stream_id: int) -> int:
        """How many body bytes the stream may send now: its window, the connection's, one frame."""
        try:
            window = self.connection.local_flow_control_window(stream_id)
        except h2.exceptions.StreamClosedError:
            return 0
        return min(window, self.connection.max_outbound_frame_size)

    def consumed(self, stream_id: int, length: int) -> None:
        """The app took ``length`` flow-controlled bytes: the client may send more (WINDOW_UPDATE)."""
        # (h2 returns the connection's share even when the stream is gone.)
        self.connection.acknowledge_received_data(length, stream_id)

    def ping(self, payload: bytes) -> None:
        """A PING (8 bytes of ``payload``) the client is to answer."""
        self.connection.ping(payload)

    def reset(self, stream_id: int, error_code: int) -> None:
        try:
            self.connection.reset_stream(stream_id, error_code)
        except h2.exceptions.StreamClosedError:
            pass

    def recode_goaway(self, error_code: int) -> None:
        """Give the GOAWAY h2 just queued another error code.

        A header block that does not decode is a COMPRESSION_ERROR (RFC 9113
        4.3), as libnghttp2 says; h2 says PROTOCOL_ERROR.
        """
        pending = self.connection.data_to_send()
        if pending[-17:-8] == GOAWAY_FRAME_HEADER:
            pending = pending[:-4] + error_code.to_bytes(4, "big")
        self.queued += pending

    def goaway(self, error_code: int = NO_ERROR) -> None:
        """GOAWAY naming the last stream the server has seen: later ones are not served.

        With an error the connection is over (h2 sends nothing more). Without,
        the streams in flight still finish, which h2's close_connection does
        not allow: that GOAWAY is framed here and queued behind h2's frames.
        """
        self.goaway_sent = True
        last_stream_id = self.connection.highest_inbound_stream_id
        if error_code != NO_ERROR:
            self.connection.close_connection(error_code, last_stream_id=last_stream_id)
            return
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        frame.error_code = NO_ERROR
        self.queued += self.connection.data_to_send() + frame.serialize()

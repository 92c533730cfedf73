"""A raw HTTP/2 client for the tests: h2's client side on a blocking socket, every wait bounded."""

from __future__ import annotations

import socket
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame


class H2Client:
    """One h2c connection with prior knowledge; ``events`` collects what the server sent."""

    def __init__(
        self, host: str, port: int, window: int | None = None, validate: bool = True, sock: socket.socket | None = None
    ) -> None:
        """``sock``: a connection made already (TLS with ALPN h2, say) instead of a new one to host:port."""
        self.sock = sock or socket.create_connection((host, port), timeout=5)
        # (Small frames leave at once: Nagle would hold one back until the server's delayed ACK.)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        self.conn = h2.connection.H2Connection(config=config)
        if window is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.conn.initiate_connection()
        self.events: list[Any] = []
        self.raw_pending = b""  # (part of a frame, when frames are read raw)
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"http"), (b":authority", b"example.test")]
        fields += [(b":path", path.encode())] + (headers or [])
        self.conn.send_headers(stream_id, fields, end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    def receive(self, timeout: float = 5.0) -> list[Any]:
        """Read once (bounded); acknowledge received data so the server may send on."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        self.events.extend(events)
        return events

    def until(self, predicate: Any, timeout: float = 10.0) -> None:
        """Read until ``predicate(self)`` holds (or the server closes, or the time is up)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                raise AssertionError(f"condition not met; events: {self.events[-5:]}")
            try:
                self.receive(remaining)
            except TimeoutError:
                continue

    def response(self, stream_id: int, timeout: float = 10.0) -> tuple[dict[bytes, bytes], bytes]:
        """The response of a stream once it ended: its headers and body."""
        self.until(lambda client: client.ended(stream_id), timeout)
        headers: dict[bytes, bytes] = {}
        body = b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return headers, body

    def ended(self, stream_id: int) -> bool:
        return any(
            isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)) and event.stream_id == stream_id
            for event in self.events
        )

    def of(self, kind: type, stream_id: int | None = None) -> list[Any]:
        return [
            event
            for event in self.events
            if isinstance(event, kind) and (stream_id is None or getattr(event, "stream_id", None) == stream_id)
        ]

    def frames_until_closed(self, timeout: float = 10.0) -> list[Any]:
        """The frames the server sends until it closes, parsed here: after a GOAWAY, h2's client takes no more."""
        frames: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.recv_raw(deadline)
            if not chunk:
                break
            frames += self.parse_frames(chunk)
        return frames

    def frames_until(self, predicate: Any, count: int, timeout: float = 10.0) -> list[Any]:
        """Raw frames (for streams h2's client does not know of) until ``count`` of them match ``predicate``."""
        matched: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(matched) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(matched)} of {count} frames came")
            chunk = self.recv_raw(deadline)
            if not chunk:
                raise AssertionError("the server closed the connection")
            matched += [frame for frame in self.parse_frames(chunk) if predicate(frame)]
        return matched

    def recv_raw(self, deadline: float) -> bytes:
        """One read, or b"" once the deadline passed or the server closed."""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        return b""

    def parse_frames(self, chunk: bytes) -> list[Any]:
        """Whole frames from what was read so far (HEADERS decoded, keeping HPACK in step)."""
        data = self.raw_pending + chunk
        frames = []
        while len(data) >= 9:
            frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
            if len(data) < 9 + length:
                break
            frame.parse_body(memoryview(data[9 : 9 + length]))
            if isinstance(frame, hyperframe.frame.HeadersFrame):
                frame.decoded = dict(self.conn.decoder.decode(frame.data, raw=True))
            frames.append(frame)
            data = data[9 + length :]
        self.raw_pending = data
        return frames

    def close(self) -> None:
        self.sock.close()

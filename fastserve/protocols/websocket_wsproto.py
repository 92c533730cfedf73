"""The ``--ws wsproto`` engine: client frames read by wsproto, with fastserve's limits around it.

``WsprotoReader`` gives the events ``websocket_frames.FrameReader`` gives, so
the one connection protocol serves both. wsproto has no message-size limit
and inflates without bound; ``Limits`` is a wsproto extension that sees every
frame header and payload first, and enforces the size limit (with each fragment's
cost) from the header, and permessage-deflate within the size limit (with
fastserve's own ``websocket_deflate``).
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from fastserve.protocols.websocket_deflate import MessageTooBig, PerMessageDeflate
from fastserve.protocols.websocket_frames import FRAGMENT_COST


class Limits(Extension):
    """The size limit (fragments counted), and bounded inflating, inside wsproto's frame decoder."""

    name = "fastserve-limits"

    def __init__(self, max_size: int, deflate: PerMessageDeflate | None) -> None:
        self.max_size = max_size
        self.deflate = deflate
        self.message_size = 0
        self.compressed = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False  # (never offered: this extension is not negotiated)

    def frame_inbound_header(self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int) -> Any:
        # Each continuation frame costs the message FRAGMENT_COST beside its payload, as in FrameReader.
        cost = FRAGMENT_COST if opcode is Opcode.CONTINUATION else 0
        if self.message_size + cost + payload_length > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        if opcode.iscontrol():
            return RsvBits(False, False, False)
        if opcode is Opcode.CONTINUATION:
            self.message_size += cost
            return RsvBits(False, False, False)
        self.compressed = bool(rsv.rsv1) and self.deflate is not None
        return RsvBits(self.compressed, False, False)

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> Any:
        if proto.header.opcode.iscontrol():  # (a control frame between fragments)
            return data
        if self.compressed:
            return self.inflate(data, False)
        self.message_size += len(data)
        return data

    def frame_inbound_complete(self, proto: Any, fin: bool) -> Any:
        if proto.header.opcode.iscontrol():
            return None
        result = self.inflate(b"", True) if self.compressed and fin else None
        if fin:
            self.message_size = 0
        return result

    def inflate(self, data: bytes, fin: bool) -> Any:
        assert self.deflate is not None
        try:
            inflated = self.deflate.inflate(data, fin, self.max_size - self.message_size)
        except MessageTooBig:
            return CloseReason.MESSAGE_TOO_BIG
        except ValueError:
            return CloseReason.PROTOCOL_ERROR
        self.message_size += len(inflated)
        return inflated


class WsprotoReader:
    """Client frames in through wsproto; out, the events of ``FrameReader.feed``."""

    def __init__(self, max_size: int, deflate: PerMessageDeflate | None = None) -> None:
        self.connection = Connection(ConnectionType.SERVER, extensions=[Limits(max_size, deflate)])
        self.parts: list[Any] = []
        self.closed = False

    def payload_view(self) -> None:
        return None  # (wsproto takes every read as bytes: see WebSocketProtocol.get_buffer)

    def payload_received(self, size: int) -> list[tuple[Any, ...]]:
        raise AssertionError("no payload view was handed out")

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        events: list[tuple[Any, ...]] = []
        if self.closed:
            return events
        connection = self.connection
        connection.receive_data(bytes(data))
        for event in connection.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self.parts.append(event.data)
                if event.message_finished:
                    if isinstance(event, TextMessage):
                        events.append(("text", "".join(self.parts)))
                    else:
                        events.append(("bytes", b"".join(self.parts)))
                    self.parts = []
            elif isinstance(event, Ping):
                events.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                events.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self.closed = True
                if connection.state is ConnectionState.OPEN:
                    # wsproto reports a broken frame as a close with the code to answer with.
                    events.append(("error", int(event.code), event.reason or "protocol error"))
                else:
                    # (A close between a message's fragments drops the unfinished message, as in FrameReader.)
                    self.parts = []
                    events.append(("close", int(event.code), event.reason or ""))
                break
        return events

"""fastserve's WebSocket frame codec, frame by frame (frames made by the websockets library)."""

from __future__ import annotations

import struct

import pytest

# The twin in use (compiled unless FASTSERVE_NO_EXTENSIONS=1): .ci/run runs this file on both.
from fastserve.protocols.websocket_codec import FrameReader, build_frame, close_payload, unmask
from fastserve.protocols.websocket_frames import (
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    FRAGMENT_COST,
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    WebSocketError,
)

MASK = b"\x11\x22\x33\x44"


class Opcode:
    CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, data: bytes, fin: bool = True, rsv1: bool = False, mask: bool = True) -> bytes:
    """A frame as a client sends it, any bits allowed (the tests need invalid ones too)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(data)
    bit = 0x80 if mask else 0
    if size < 126:
        header = bytes([first, bit | size])
    elif size < 1 << 16:
        header = bytes([first, bit | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return header + data
    return header + MASK + bytes(byte ^ MASK[index % 4] for index, byte in enumerate(data))


def feed_in_pieces(reader: FrameReader, data: bytes, piece: int) -> list:
    events = []
    for start in range(0, len(data), piece):
        events += reader.feed(data[start : start + piece])
    return events


@pytest.mark.parametrize("piece", [1, 3, 7, 1 << 20])
def test_messages_fragments_and_control_frames_in_any_cut(piece):
    stream = (
        client_frame(Opcode.TEXT, "héllo".encode())
        + client_frame(Opcode.BINARY, bytes(range(256)) * 300)  # a 16-bit length
        + client_frame(Opcode.TEXT, b"ab" + b"\xc3", fin=False)  # "é" cut across fragments
        + client_frame(Opcode.PING, b"are you there")
        + client_frame(Opcode.CONT, b"\xa9cd", fin=False)
        + client_frame(Opcode.CONT, b"", fin=True)
        + client_frame(Opcode.BINARY, b"x" * 70000)  # a 64-bit length
        + client_frame(Opcode.PONG, b"")
        + client_frame(Opcode.CLOSE, close_payload(1000, "bye"))
        + client_frame(Opcode.TEXT, b"after the close: never read")
    )
    events = feed_in_pieces(FrameReader(max_size=1 << 20), stream, piece)
    assert events == [
        ("text", "héllo"),
        ("bytes", bytes(range(256)) * 300),
        ("ping", b"are you there"),
        ("text", "abécd"),
        ("bytes", b"x" * 70000),
        ("pong", b""),
        ("close", 1000, "bye"),
    ]


def refusal(stream: bytes, max_size: int = 1 << 20, **options) -> WebSocketError:
    """The error event ending what ``stream`` gives, as a WebSocketError."""
    events = FrameReader(max_size=max_size, **options).feed(stream)
    assert events and events[-1][0] == "error", events
    return WebSocketError(events[-1][1], events[-1][2])


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (client_frame(Opcode.TEXT, b"unmasked", mask=False), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.TEXT, b"x", rsv1=True), CLOSE_PROTOCOL_ERROR),  # nothing negotiated
        (bytes([0x83, 0x80]) + b"mask", CLOSE_PROTOCOL_ERROR),  # opcode 3 is reserved
        (bytes([0x8B, 0x80]) + b"mask", CLOSE_PROTOCOL_ERROR),  # opcode 11 too
        (client_frame(Opcode.PING, b"x", fin=False), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.PING, b"x" * 126), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.CONT, b"x"), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(Opcode.TEXT, b"b"), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.CLOSE, b"\x03"), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.CLOSE, struct.pack("!H", 1005)), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.CLOSE, struct.pack("!H", 2999)), CLOSE_PROTOCOL_ERROR),
        (client_frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"\xff"), CLOSE_INVALID_DATA),
        (client_frame(Opcode.TEXT, b"\xff"), CLOSE_INVALID_DATA),
        (client_frame(Opcode.TEXT, b"ok", fin=False) + client_frame(Opcode.CONT, b"\xc3"), CLOSE_INVALID_DATA),
    ],
)
def test_invalid_frames_are_refused_with_their_close_code(stream, code):
    assert refusal(stream).code == code


def test_invalid_text_fails_at_the_first_bad_fragment():
    stream = client_frame(Opcode.TEXT, b"\xed\xa0\x80", fin=False)  # a surrogate: never valid
    assert refusal(stream).code == CLOSE_INVALID_DATA


def test_what_came_before_an_error_is_kept():
    stream = client_frame(Opcode.PING, b"p") + client_frame(Opcode.TEXT, b"ok") + client_frame(Opcode.CONT, b"x")
    events = FrameReader(max_size=100).feed(stream)
    assert events[:2] == [("ping", b"p"), ("text", "ok")]
    assert events[2][:2] == ("error", CLOSE_PROTOCOL_ERROR)
    assert FrameReader(max_size=100).feed(b"") == []


def test_size_limit_is_checked_from_the_header_before_the_payload():
    # Only the header of a frame announcing 2**62 bytes arrives: refused at once.
    header = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 62) + b"mask"
    assert refusal(header, max_size=1024).code == CLOSE_TOO_BIG
    # A length with its top bit set is over any limit (the largest is 2**63 - 1), and refused as such.
    top_bit = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"mask"
    assert refusal(top_bit, max_size=(1 << 63) - 1).code == CLOSE_TOO_BIG
    # An unmasked frame or an unknown opcode is refused from its first two bytes.
    assert refusal(bytes([0x82, 0x7E])).code == CLOSE_PROTOCOL_ERROR
    assert refusal(bytes([0x8F, 0x80])).code == CLOSE_PROTOCOL_ERROR


def test_size_limit_counts_every_fragment_of_a_message():
    # Ten fragments of 100 bytes and an empty last one: 1,000 payload bytes and ten continuation headers.
    fragments = b"".join(
        client_frame(Opcode.BINARY if index == 0 else Opcode.CONT, b"x" * 100, fin=False) for index in range(10)
    )
    whole = fragments + client_frame(Opcode.CONT, b"", fin=True)
    limit = 1000 + 10 * FRAGMENT_COST
    assert FrameReader(max_size=limit).feed(whole) == [("bytes", b"x" * 1000)]
    assert refusal(whole, max_size=limit - 1).code == CLOSE_TOO_BIG


def test_a_run_of_empty_fragments_ends_at_the_size_limit():
    start = client_frame(Opcode.TEXT, b"", fin=False)
    empty = client_frame(Opcode.CONT, b"", fin=False)
    reader = FrameReader(max_size=10 * FRAGMENT_COST)
    assert reader.feed(start + empty * 10) == []
    assert reader.feed(empty)[0][:2] == ("error", CLOSE_TOO_BIG)


@pytest.mark.parametrize("size", [64, 1024])
def test_a_large_message_in_small_fragments_is_delivered(size):
    # Autobahn 9.3/9.4: 4 MiB in fragments of 64 B to 1 KiB, within the default 16 MiB limit.
    message = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    frames = [
        client_frame(
            Opcode.BINARY if start == 0 else Opcode.CONT,
            message[start : start + size],
            fin=start + size >= len(message),
        )
        for start in range(0, len(message), size)
    ]
    assert FrameReader(max_size=16 * 1024 * 1024).feed(b"".join(frames)) == [("bytes", message)]


def test_a_close_between_fragments_closes():
    # Autobahn 7.1.5: the unfinished message is dropped, the close answered; what follows is not read.
    stream = (
        client_frame(Opcode.TEXT, b"frag", fin=False)
        + client_frame(Opcode.CLOSE, struct.pack("!H", 1000))
        + client_frame(Opcode.CONT, b"ment")
    )
    assert FrameReader(max_size=100).feed(stream) == [("close", 1000, "")]


@pytest.mark.parametrize("large", [False, True], ids=["small-frame", "large-frame"])
@pytest.mark.parametrize("fragmented", [False, True], ids=["first-frame", "continuation"])
def test_invalid_text_fails_before_its_frame_completes(large, fragmented):
    # Autobahn 6.4.3/6.4.4: the frame's payload arrives in pieces; the piece that breaks UTF-8 fails at once.
    valid = "κόσμε".encode() * (20000 if large else 1)
    payload = valid + b"\xf4\x90\x80\x80" + b"rest" * 10  # (U+110000: past Unicode's end)
    if fragmented:  # (the first fragment ends inside a character, which the continuation completes)
        stream = client_frame(Opcode.TEXT, "é".encode()[:1], fin=False)
        stream += client_frame(Opcode.CONT, "é".encode()[1:] + payload)
    else:
        stream = client_frame(Opcode.TEXT, payload)
    before_invalid, frame_end = len(stream) - 44, len(stream) - 1
    reader = FrameReader(max_size=1 << 20)
    assert reader.feed(stream[:before_invalid]) == []
    events = reader.feed(stream[before_invalid:frame_end])
    assert events and events[-1][:2] == ("error", CLOSE_INVALID_DATA), events


def test_valid_text_in_pieces_is_not_refused():
    text = "κόσμε 🙂 " * 20000
    for fragmented in (False, True):
        data = text.encode()
        if fragmented:
            stream = client_frame(Opcode.TEXT, data[:7], fin=False) + client_frame(Opcode.CONT, data[7:])
        else:
            stream = client_frame(Opcode.TEXT, data)
        for piece in (1, 3, 1000, 70000):
            reader = FrameReader(max_size=1 << 20)
            events = []
            for start in range(0, len(stream), piece):
                events += reader.feed(stream[start : start + piece])
                if piece < 100 and start > 3000:  # (byte by byte through the whole frame takes long)
                    events += reader.feed(stream[start + piece :])
                    break
            assert events == [("text", text)], (fragmented, piece)


def test_close_without_a_code():
    assert FrameReader(max_size=10).feed(client_frame(Opcode.CLOSE, b"")) == [("close", CLOSE_NO_STATUS, "")]


def test_server_frames_and_close_reasons():
    assert build_frame(OP_TEXT, b"hi") == b"\x81\x02hi"
    assert build_frame(OP_BINARY, b"x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert build_frame(OP_BINARY, b"x" * 70000)[:10] == b"\x82\x7f" + struct.pack("!Q", 70000)
    assert build_frame(OP_TEXT, b"part", fin=False)[0] == 0x01
    # A reason is cut to 123 bytes, on a character boundary.
    payload = close_payload(1000, "é" * 100)
    assert len(payload) == 2 + 122 and payload[2:].decode("utf-8") == "é" * 61
    assert build_frame(OP_CLOSE, payload)[1] == len(payload)


def test_frames_the_websockets_library_makes():
    frames = pytest.importorskip("websockets.frames")
    stream = b"".join(
        frames.Frame(opcode, data, fin=fin).serialize(mask=True)
        for opcode, data, fin in [
            (frames.Opcode.TEXT, "ünïcode".encode(), True),
            (frames.Opcode.BINARY, b"\x00" * 65536, False),
            (frames.Opcode.CONT, b"\x01", True),
            (frames.Opcode.CLOSE, frames.Close(4000, "app says bye").serialize(), True),
        ]
    )
    assert FrameReader(max_size=1 << 20).feed(stream) == [
        ("text", "ünïcode"),
        ("bytes", b"\x00" * 65536 + b"\x01"),
        ("close", 4000, "app says bye"),
    ]


def test_unmask_matches_the_byte_by_byte_definition():
    mask = b"\x01\x80\xff\x3c"
    for size in (0, 1, 3, 4, 5, 1023):
        payload = bytes(range(256)) * 4
        payload = payload[:size]
        expected = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        assert unmask(payload, mask) == expected


def test_short_differential_run_against_the_websockets_library():
    pytest.importorskip("websockets")
    from tests.fuzz.websocket_differential import fuzz

    assert fuzz(seed=20261202, count=3000) is None


def test_large_payload_is_read_into_its_own_buffer():
    """A large frame's payload goes straight into the message's buffer (payload_view), wherever reads end."""
    data = bytes(range(256)) * 800
    frame = client_frame(Opcode.BINARY, data) + client_frame(Opcode.TEXT, b"next")
    reader = FrameReader(max_size=1 << 20)
    assert reader.feed(frame[:1000]) == []
    rest = frame[1000:]
    events = []
    while reader.payload_view() is not None:
        view = reader.payload_view()
        size = min(len(view), 65536)
        view[:size] = rest[:size]
        view.release()
        rest = rest[size:]
        events += reader.payload_received(size)
    events += reader.feed(rest)
    assert events == [("bytes", data), ("text", "next")]


def test_a_reused_payload_buffer_never_changes_a_message_already_given():
    """Consecutive large frames of one size share a buffer; what the first gave out stays as it was."""
    first, second = bytes(range(256)) * 400, b"x" * 102400
    unfinished = bytes(reversed(range(256))) * 400
    stream = (
        client_frame(Opcode.BINARY, first)
        + client_frame(Opcode.TEXT, second)
        + client_frame(Opcode.BINARY, unfinished, fin=False)  # kept among its fragments: not reused
        + client_frame(Opcode.CONT, first)
    )
    events = feed_in_pieces(FrameReader(max_size=1 << 20), stream, 65536)
    assert events == [("bytes", first), ("text", second.decode()), ("bytes", unfinished + first)]

"""Differential fuzzing of fastserve's WebSocket frame reader against the websockets library.

The same generated client frame streams (valid frames, fragmented messages,
control frames in between, invalid bits, lengths, opcodes, close payloads and
UTF-8, cut at random places) go to ``FrameReader`` and to websockets' sans-io
``Protocol`` (with a message assembler that decodes text fragment by
fragment, as websockets' own connections do); the messages and the close code
must be the same. Where fastserve departs from websockets on purpose (a close
between fragments is answered, not refused), the reference says so. Run as a module for long runs:

    python -m tests.fuzz.websocket_differential --count 100000 --seed 1
"""

from __future__ import annotations

import argparse
import codecs
import random
import struct

from websockets.frames import Close, Opcode
from websockets.protocol import Protocol, Side

from fastserve.protocols.websocket_codec import FrameReader
from fastserve.protocols.websocket_frames import FRAGMENT_COST

MAX_SIZE = 4096
TEXTS = ["", "a", "héllo", "日本語", "\U0001f600", "x" * 130]
CLOSE_CODES = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1014, 1015, 2999, 3000, 4999, 5000]


def frame(rng: random.Random, opcode: int, data: bytes, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if rng.random() < 0.02:
        first |= rng.choice((0x40, 0x20, 0x10))  # a reserved bit
    size = len(data)
    masked = rng.random() > 0.01
    bit = 0x80 if masked else 0
    if size < 126 and rng.random() > 0.05:
        header = bytes([first, bit | size])
    elif size < 1 << 16 and rng.random() > 0.3:
        header = bytes([first, bit | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return header + data
    mask = bytes(rng.randrange(256) for _ in range(4))
    return header + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))


def payload(rng: random.Random, text: bool) -> bytes:
    if text:
        data = rng.choice(TEXTS).encode()
        if rng.random() < 0.1 and data:
            data = data[: rng.randrange(len(data) + 1)] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b""])
        return data
    return bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 5, 125, 126, 300))))


def generate(rng: random.Random) -> bytes:
    frames = []
    for _ in range(rng.randrange(1, 8)):
        kind = rng.random()
        if kind < 0.45:
            text = rng.random() < 0.5
            opcode = Opcode.TEXT if text else Opcode.BINARY
            data = payload(rng, text)
            parts = rng.randrange(1, 4)
            cuts = sorted(rng.randrange(len(data) + 1) for _ in range(parts - 1))
            pieces = [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            # Sometimes the message is left unfinished: what follows comes between its fragments.
            unfinished = rng.random() < 0.1
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                frames.append(frame(rng, opcode if index == 0 else Opcode.CONT, piece, last and not unfinished))
                if rng.random() < 0.2:
                    frames.append(frame(rng, Opcode.PING, b"p"))
        elif kind < 0.65:
            frames.append(frame(rng, rng.choice((Opcode.PING, Opcode.PONG)), payload(rng, False)[:130]))
        elif kind < 0.75:
            frames.append(frame(rng, Opcode.CONT, b"stray", rng.random() < 0.5))
        elif kind < 0.8:
            frames.append(frame(rng, rng.choice((3, 7, 11, 15)), b""))
        elif kind < 0.85:
            frames.append(frame(rng, Opcode.BINARY, b"x" * rng.choice((MAX_SIZE, MAX_SIZE + 1))))
        else:
            code = rng.choice(CLOSE_CODES)
            reason = rng.choice([b"", b"bye", b"\xff", "é".encode()])
            body = rng.choice([b"", b"\x03", struct.pack("!H", code) + reason])
            frames.append(frame(rng, Opcode.CLOSE, body))
    stream = bytearray(b"".join(frames))
    if stream and rng.random() < 0.1:
        stream[rng.randrange(len(stream))] = rng.randrange(256)
    return bytes(stream)


def ours(stream: bytes, cuts: list[int]) -> tuple[list, int | None]:
    reader = FrameReader(max_size=MAX_SIZE)
    events: list = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += reader.feed(stream[start:end])
    if events and events[-1][0] == "error":
        return events[:-1], events[-1][1]
    return events, None


class CostedProtocol(Protocol):
    """websockets' Protocol, each continuation frame costing FRAGMENT_COST against the limit as in fastserve."""

    def recv_frame(self, frame) -> None:
        super().recv_frame(frame)
        if frame.opcode is Opcode.CONT and self.current_size is not None:
            self.current_size += FRAGMENT_COST


def reference(stream: bytes, padding: bytes = b"") -> tuple[list, int | None]:
    protocol = CostedProtocol(Side.SERVER, max_size=MAX_SIZE)
    protocol.receive_data(stream + padding)
    events: list = []
    decoder = None
    fragments: list = []
    text = False
    for received in protocol.events_received():
        opcode = received.opcode
        if opcode in (Opcode.PING, Opcode.PONG):
            events.append(("ping" if opcode is Opcode.PING else "pong", received.data))
            continue
        if opcode is Opcode.CLOSE:
            close = Close.parse(received.data)
            events.append(("close", close.code, close.reason))
            return events, None
        if opcode is not Opcode.CONT:
            text = opcode is Opcode.TEXT
            decoder = codecs.getincrementaldecoder("utf-8")() if text else None
            fragments = []
        if text:
            try:
                fragments.append(decoder.decode(received.data, final=received.fin))
            except UnicodeDecodeError:
                return events, 1007
        else:
            fragments.append(received.data)
        if received.fin:
            events.append(("text", "".join(fragments)) if text else ("bytes", b"".join(fragments)))
    if in_message(protocol) and protocol.close_rcvd is not None:
        # websockets refuses a close between a message's fragments (1002);
        # fastserve answers it, as wsproto and Autobahn 7.1.5 have it.
        events.append(("close", protocol.close_rcvd.code, protocol.close_rcvd.reason))
        return events, None
    if protocol.close_sent is not None:
        return events, protocol.close_sent.code
    return events, None


def in_message(protocol: Protocol) -> bool:
    """Whether websockets stopped at a close frame that came between a message's fragments."""
    return str(getattr(protocol, "parser_exc", "")) == "incomplete fragmented message"


def disagreement(rng: random.Random) -> str | None:
    stream = generate(rng)
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(4)))
    mine, theirs = ours(stream, cuts), reference(stream)
    if mine[1] is not None and theirs[1] is None:
        # fastserve refuses a frame from its header; websockets once the frame
        # is whole. Let the last frame end (a frame under the size limit ends
        # within MAX_SIZE bytes; zeros after it are refused as unmasked frames).
        theirs = reference(stream, bytes(MAX_SIZE + 14))
    if mine != theirs:
        return f"stream={stream!r} cuts={cuts}\n  fastserve: {mine}\n  websockets: {theirs}"
    return None


def fuzz(seed: int, count: int) -> str | None:
    rng = random.Random(seed)
    for _ in range(count):
        found = disagreement(rng)
        if found is not None:
            return found
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    found = fuzz(args.seed, args.count)
    if found is not None:
        print(f"DISAGREEMENT\n{found}")
        return 1
    print(f"{args.count:,} streams (seed {args.seed}): no disagreement")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

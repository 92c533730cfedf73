"""A lean WebSocket load client: N connections, each echoing one message at a time.

Frames are built once (masked, as a client must) and the server's answers
are counted by size, not parsed: the client spends a few microseconds per
message, so the server is what is measured. No compression is offered.

    python bench/ws_load.py --port 8000 --connections 16 --size 1024 --duration 5
    python bench/ws_load.py --port 8000 --idle 1000      # opens sockets and holds them (see compare.py)

Prints one line: "<messages> messages in <seconds> s".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import struct
import time

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x12\x34\x56\x78"


def client_frame(payload: bytes) -> bytes:
    """A masked text frame carrying ``payload``."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    key = (MASK * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return header + MASK + masked


def server_frame_size(size: int) -> int:
    return size + (2 if size < 126 else 4 if size < 1 << 16 else 10)


class EchoClient(asyncio.BufferedProtocol):
    """Reads into one reused buffer (no bytes object per read): the answers are only counted."""

    def __init__(self, frame: bytes, answer_size: int, counts: list[int], opened: asyncio.Future | None) -> None:
        self.buffer = memoryview(bytearray(256 * 1024))
        self.frame = frame
        self.answer_size = answer_size
        self.counts = counts
        self.opened = opened
        self.head = b""
        self.received = 0
        self.transport: asyncio.Transport | None = None
        self.running = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(HANDSHAKE % base64.b64encode(os.urandom(16)))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.head is not None:
            self.data_received(bytes(self.buffer[:nbytes]))
        else:
            self.count(nbytes)

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {self.head[:80]!r}")
            data = self.head[end + 4 :]
            self.head = None
            if self.opened is not None and not self.opened.done():
                self.opened.set_result(None)
            if self.frame:
                self.transport.write(self.frame)
        self.count(len(data))

    def count(self, size: int) -> None:
        self.received += size
        while self.received >= self.answer_size:
            self.received -= self.answer_size
            self.counts[0] += 1
            if self.running:
                self.transport.write(self.frame)


async def open_clients(port: int, count: int, frame: bytes, answer_size: int, counts: list[int]) -> list[EchoClient]:
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(count):
        opened = loop.create_future()
        _, client = await loop.create_connection(
            lambda opened=opened: EchoClient(frame, answer_size, counts, opened), "127.0.0.1", port
        )
        await asyncio.wait_for(opened, 10)
        clients.append(client)
    return clients


async def echo_load(port: int, connections: int, size: int, duration: float) -> tuple[int, float]:
    counts = [0]
    clients = await open_clients(port, connections, client_frame(b"x" * size), server_frame_size(size), counts)
    started = time.perf_counter()
    await asyncio.sleep(duration)
    done, elapsed = counts[0], time.perf_counter() - started
    for client in clients:
        client.running = False
        client.transport.close()
    return done, elapsed


async def hold_idle(port: int, count: int) -> list[EchoClient]:
    """``count`` open WebSockets that send nothing (the caller closes their transports)."""
    return await open_clients(port, count, b"", 1, [0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    messages, elapsed = run(echo_load(args.port, args.connections, args.size, args.duration))
    print(f"{messages} messages in {elapsed:.3f} s")


if __name__ == "__main__":
    main()

"""Two checks that are measurements, not tests: memory after connection resets,
and the cost per byte of uploads that arrive in many small packets.

    python bench/robustness.py [--http httptools|h11] [--resets 10000]

Memory: the server's RSS after a warm-up, after N connections reset by the
client (a third idle, a third mid-head, a third after a full request), and after
N more; "flat" means the second batch adds nothing like the first.
Uploads: 25 MiB and 100 MiB bodies sent in 1 KiB writes (TCP_NODELAY), with the
server's CPU seconds per MiB for each: linear means the two stay about equal.
"""

from __future__ import annotations

import argparse
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from compare import ROOT, cpu_seconds, free_port, wait_listening

PAGE = 4096


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE // 1024


def reset_connections(port: int, count: int) -> None:
    linger = struct.pack("ii", 1, 0)
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if index % 3 == 1:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        elif index % 3 == 2:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.close()


def upload(port: int, size: int, packet: int = 1024) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * packet
        for _ in range(size // packet):
            sock.send(block)
        response = sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 200"), response[:100]
        assert response.endswith(b"%d" % size), response[-50:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", default="httptools")
    parser.add_argument("--resets", type=int, default=10000)
    args = parser.parse_args()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "fastserve",
        "bench.apps:counting_upload",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--http",
        args.http,
    ]
    server = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_listening(port)
        reset_connections(port, 500)
        time.sleep(1)
        start = rss_kib(server.pid)
        reset_connections(port, args.resets)
        time.sleep(1)
        first = rss_kib(server.pid)
        reset_connections(port, args.resets)
        time.sleep(1)
        second = rss_kib(server.pid)
        print(f"RSS KiB: after warm-up {start}, after {args.resets} resets {first}, after {2 * args.resets} {second}")
        for mib in (25, 100):
            before = cpu_seconds(server.pid)
            began = time.monotonic()
            upload(port, mib * 1024 * 1024)
            cpu = cpu_seconds(server.pid) - before
            wall = time.monotonic() - began
            print(f"upload {mib} MiB in 1 KiB packets: {wall:.2f} s wall, server CPU {cpu / mib * 1000:.1f} ms/MiB")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

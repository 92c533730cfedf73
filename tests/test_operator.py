"""What an operator sees: the installed ``fastserve`` command, the default log configuration, every line.

The server is driven through HTTP/1.1, WebSocket sessions that end every way,
h2c, TLS with HTTP/2 and the requests it refuses; the test holds the exact
lines it prints, on stdout (access) and stderr (everything else), and its exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import client_context, recv_all
from tests.processes import Process

FASTSERVE = str(Path(sys.executable).with_name("fastserve"))
PEER = r"127\.0\.0\.1:\d+"
TOO_LONG = HTTPStatus(414).phrase  # ("URI Too Long" from CPython 3.13, "Request-URI Too Long" before)

pytestmark = pytest.mark.skipif(not os.path.exists(FASTSERVE), reason="the fastserve command is not installed")


def installed(*args: str) -> Process:
    return Process(*args, command=[FASTSERVE])


def access(request_line: str, status: str) -> str:
    return rf'INFO:     {PEER} - "{re.escape(request_line)}" {status}'


def assert_lines(lines: list[str], expected: list[str]) -> None:
    lines = [line for line in lines if line != "<eof>"]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}\n" + "\n".join(lines)


def refused(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        return recv_all(sock).split(b"\r\n", 1)[0]


async def websocket_sessions(port: int) -> None:
    base = f"ws://127.0.0.1:{port}"
    async with websockets.connect(base + "/ws") as client:  # closed by the client
        await client.send("hi")
        assert await client.recv() == "hi"
    with pytest.raises(InvalidStatus) as denied:  # refused before the handshake
        async with websockets.connect(base + "/ws-deny"):
            pass
    assert denied.value.response.status_code == 403
    async with websockets.connect(base + "/ws-close") as client:  # closed by the server
        await client.wait_closed()
        assert client.close_code == 1000
    client = await websockets.connect(base + "/ws-stream")  # the client gone while the app sends
    await client.recv()
    client.transport.abort()
    await asyncio.sleep(0.2)


STARTED = [
    r"INFO:     Started server process \[\d+\]",
    r"INFO:     Waiting for application startup\.",
    r"INFO:     Application startup complete\.",
]
FINISHED = [
    r"INFO:     Shutting down",
    r"INFO:     Waiting for application shutdown\.",
    r"INFO:     Application shutdown complete\.",
    r"INFO:     Finished server process \[\d+\]",
]


def test_every_protocol_and_refusal_gives_one_access_line_and_no_traceback():
    process = installed("tests.cli_apps:operator", "--port", "0")
    try:
        url = process.url()
        port = int(url.rsplit(":", 1)[1])
        assert httpx.get(url + "/").text == "hello"
        asyncio.run(websocket_sessions(port))
        with httpx.Client(http1=False, http2=True) as client:  # h2c, prior knowledge
            response = client.get(url + "/")
            assert (response.http_version, response.text) == ("HTTP/2", "hello")
        assert refused(port, b"GARBAGE\r\n\r\n") == b"HTTP/1.1 400 Bad Request"
        assert refused(
            port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ) == (b"HTTP/1.1 400 Bad Request")
        big_field = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        assert refused(port, big_field) == b"HTTP/1.1 431 Request Header Fields Too Large"
        long_target = b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert refused(port, long_target) == f"HTTP/1.1 414 {TOO_LONG}".encode()
    finally:
        process.proc.send_signal(signal.SIGINT)
    assert process.finish() == 0
    assert_lines(
        process.stdout_lines,
        [
            access("GET / HTTP/1.1", "200 OK"),
            access("WebSocket /ws HTTP/1.1", "101 Switching Protocols"),
            access("WebSocket /ws-deny HTTP/1.1", "403 Forbidden"),
            access("WebSocket /ws-close HTTP/1.1", "101 Switching Protocols"),
            access("WebSocket /ws-stream HTTP/1.1", "101 Switching Protocols"),
            access("GET / HTTP/2", "200 OK"),
            rf'INFO:     {PEER} - "-" 400 Bad Request',
            rf'INFO:     {PEER} - "-" 400 Bad Request',
            rf'INFO:     {PEER} - "-" 431 Request Header Fields Too Large',
            rf'INFO:     {PEER} - "-" 414 {TOO_LONG}',
        ],
    )
    assert_lines(
        process.lines,
        [
            *STARTED,
            r"INFO:     Fastserve running on http://127\.0\.0\.1:\d+ \(Press CTRL\+C to quit\)",
            r'WARNING:  Invalid HTTP request received: illegal request line: "GARBAGE"',
            r"WARNING:  Invalid HTTP request received: Transfer-Encoding can't be present with Content-Length",
            r"WARNING:  Invalid HTTP request received: Request header field too large",
            r"WARNING:  Invalid HTTP request received: Request target too long",
            *FINISHED,
        ],
    )


def test_tls_with_http2_as_an_operator_sees_it(ca, server_files):
    process = installed(
        "tests.cli_apps:operator",
        "--port",
        "0",
        "--ssl-certfile",
        server_files["certfile"],
        "--ssl-keyfile",
        server_files["keyfile"],
    )
    try:
        url = process.wait_line(r"running on (https://\S+)").group(1)
        with httpx.Client(http2=True, verify=client_context(ca)) as client:
            response = client.get(url + "/")
            assert (response.http_version, response.text) == ("HTTP/2", "hello")
            response = httpx.get(url + "/", verify=client_context(ca))
            assert (response.http_version, response.text) == ("HTTP/1.1", "hello")
    finally:
        process.proc.send_signal(signal.SIGINT)
    assert process.finish() == 0
    assert_lines(process.stdout_lines, [access("GET / HTTP/2", "200 OK"), access("GET / HTTP/1.1", "200 OK")])
    assert_lines(
        process.lines,
        [*STARTED, r"INFO:     Fastserve running on https://127\.0\.0\.1:\d+ \(Press CTRL\+C to quit\)", *FINISHED],
    )


def test_workers_say_where_they_listen_once():
    process = installed("tests.cli_apps:operator", "--port", "0", "--workers", "2")
    try:
        url = process.url()
        process.wait_line(r"Worker \[\d+\] is ready")  # the first alone, then the second
        process.wait_line(r"Worker \[\d+\] is ready(?s:.*)Worker \[\d+\] is ready", joined=True)
        assert httpx.get(url + "/").text == "hello"
    finally:
        process.proc.send_signal(signal.SIGINT)
    assert process.finish(20) == 0
    lines = [line for line in process.lines if line != "<eof>"]
    assert sum("running on" in line for line in lines) == 1, lines
    assert lines[0].startswith("INFO:     Fastserve running on http://127.0.0.1:")
    assert re.fullmatch(r"INFO:     Started parent process \[\d+\]", lines[1])
    assert sum(bool(re.fullmatch(r"INFO:     Started server process \[\d+\]", line)) for line in lines) == 2
    assert sum(bool(re.fullmatch(r"INFO:     Finished server process \[\d+\]", line)) for line in lines) == 2
    assert re.fullmatch(r"INFO:     Stopping parent process \[\d+\]", lines[-1]), lines
    assert_lines(process.stdout_lines, [access("GET / HTTP/1.1", "200 OK")])

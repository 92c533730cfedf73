"""The HTTP/1.1 protocol driven in-process through a fake transport: bytes in,
app, bytes out, no sockets. Each benchmark round serves a batch of requests on
one connection; pytest-benchmark's "ops" is batches per second, and
requests/s = ops × the batch size printed in the name.

    pytest bench/ --benchmark-only [--benchmark-group-by=func]
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from bench.apps import BODY, HEADERS, counting_upload, plaintext
from fastserve.compiled import compiled
from fastserve.protocols import compiled_http1, compiled_state, http1_cycle, parser_factory, python_http1, python_state

BATCH = 100
GET = b"GET /plaintext?x=1 HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
BODY_64K = b"x" * 65536
POST_64K = b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: 65536\r\n\r\n" + BODY_64K
CHUNKED_UPLOAD = (
    b"POST /upload HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"1000\r\n" + b"y" * 4096 + b"\r\n" for _ in range(16))
    + b"0\r\n\r\n"
)

IMPLEMENTATIONS = [("cython", "httptools"), ("cython", "h11"), ("python", "httptools"), ("python", "h11")]


class NullTransport:
    """Counts the responses written (and the 200s among them, with what their bodies said)."""

    def __init__(self) -> None:
        self.responses = 0
        self.ok = 0
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.responses += data.count(b"HTTP/1.1 ")
        self.ok += data.count(b"HTTP/1.1 200 ")
        self.written = data[-256:]  # (the end of the last write: the last response's body)

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False  # (as under TLS: an error answer closes at once, no lingering)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 80)}.get(name)


class Driver:
    """One connection on a private event loop, fed request bytes batch by batch."""

    def __init__(self, implementation: str, http: str, app: Any) -> None:
        compiled = implementation == "cython"
        module, state_module = (compiled_http1, compiled_state) if compiled else (python_http1, python_state)
        if module is None:
            pytest.skip("the compiled protocol is not built")
        self.loop = asyncio.new_event_loop()
        self.state = state_module.ServerState(
            app=app, loop=self.loop, parser_factory=parser_factory(http), access_log=False
        )
        self.protocol = module.HTTP1Protocol(self.state)
        self.transport = NullTransport()
        self.protocol.connection_made(self.transport)

    def serve(self, chunks: list[bytes], expected: int) -> None:
        transport = self.transport
        target = transport.responses + expected

        async def feed() -> None:
            for chunk in chunks:
                self.protocol.data_received(chunk)
                await asyncio.sleep(0)
            while transport.responses < target:
                await asyncio.sleep(0)

        self.loop.run_until_complete(feed())

    def close(self) -> None:
        self.protocol.connection_lost(None)
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


@pytest.fixture(params=IMPLEMENTATIONS, ids=["/".join(pair) for pair in IMPLEMENTATIONS])
def implementation(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


def run_scenario(
    benchmark: Any, implementation: tuple[str, str], app: Any, chunks: list[bytes], count: int, body: bytes
) -> None:
    """Serve ``count`` requests a round; every response a 200 ending in ``body``, the connection kept."""
    driver = Driver(*implementation, app)
    try:
        benchmark.extra_info["requests_per_round"] = count
        benchmark(driver.serve, chunks, count)
        transport = driver.transport
        assert transport.responses > 0 and transport.responses % count == 0, transport.responses
        assert transport.ok == transport.responses and not transport.closed
        assert transport.written.endswith(body), transport.written
    finally:
        driver.close()


def test_simple_get_x100(benchmark, implementation):
    """Keep-alive sequence: 100 GETs, each in its own read."""
    run_scenario(benchmark, implementation, plaintext, [GET] * BATCH, BATCH, BODY)


def test_pipelined_16_x100(benchmark, implementation):
    """Pipelined batches of 16 requests in one read."""
    run_scenario(benchmark, implementation, plaintext, [GET * 16] * (BATCH // 16), (BATCH // 16) * 16, BODY)


def test_pipeline_flood_x2000(benchmark, implementation):
    """2000 GETs in 64 KiB reads: past the pipeline cap, parked and parsed as answers make room."""
    flood = GET * 2000
    chunks = [flood[start : start + 65536] for start in range(0, len(flood), 65536)]
    run_scenario(benchmark, implementation, plaintext, chunks, 2000, BODY)


def test_post_64k_x10(benchmark, implementation):
    """POST with a 64 KiB body, read fully by the app."""
    run_scenario(benchmark, implementation, counting_upload, [POST_64K] * 10, 10, b"\r\n\r\n65536")


def test_chunked_upload_x10(benchmark, implementation):
    """Chunked upload of 16 × 4 KiB."""
    run_scenario(benchmark, implementation, counting_upload, [CHUNKED_UPLOAD] * 10, 10, b"\r\n\r\n65536")


def test_response_head_encoding(benchmark):
    """A typical small response head: status line, defaults, two app headers.

    Each round checks and encodes ``http.response.start`` (start_response) and
    completes the framing (finish_head) on a new cycle, as a request does.
    """
    # The request cycle's own module (http1_cycle), compiled beside the protocol.
    module = compiled("http1_cycle") if compiled_http1 else http1_cycle
    driver = Driver("cython" if compiled_http1 else "python", "httptools", plaintext)
    scope = {"method": "GET"}
    start = {"type": "http.response.start", "status": 200, "headers": HEADERS}

    def encode() -> bytes:
        cycle = module.RequestCycle(driver.protocol, scope, True, True, False, False)
        cycle.body_complete = True
        cycle.start_response(start)
        return b"".join(cycle.finish_head(len(b"Hello, world!"), False))

    try:
        head = benchmark(encode)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"content-length: 13\r\n\r\n")
    finally:
        driver.close()


def test_scope_building(benchmark):
    """The per-request part of scope building: the protocol's own build_scope()."""
    driver = Driver("cython" if compiled_http1 else "python", "httptools", plaintext)
    try:
        protocol = driver.protocol
        protocol.url = b"/plaintext?x=1"
        protocol.headers = [(b"host", b"bench"), (b"accept", b"*/*")]
        scope = benchmark(protocol.build_scope, "GET", "1.1", True)
        assert (scope["path"], scope["query_string"]) == ("/plaintext", b"x=1")
    finally:
        driver.close()


def pytest_report_header() -> str:
    return f"fastserve bench, FASTSERVE_NO_EXTENSIONS={os.environ.get('FASTSERVE_NO_EXTENSIONS', '')}"

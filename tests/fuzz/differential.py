"""Differential fuzzer: the httptools path and the h11 path must behave as one.

The same generated and mutated request bytes, split into reads at random
points, go to one HTTP1Protocol on each parser (the build in use: compiled or
pure Python). Any difference in what the application sees (scope, body,
disconnect) or in what the client gets (the bytes written, whether the server
closed, whether reading stalled) is a failure, printed with the input that
caused it so that it can become a fixed test case (tests/test_differential.py).

    python -m tests.fuzz.differential --count 1000000 --seed 1 --jobs 2

Inputs always end with an empty line, so that a head cut off by the end of the
input is complete: how soon each parser notices a bad byte in a head that is
still arriving is timing, not behaviour (llhttp sees it at once, h11 at the end
of the head), and a slow client is what the header timeout is for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import random
import sys
import time
from typing import Any

from tests.test_flow import connect

PARSERS = ("httptools", "h11")

KNOWN_METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"QUERY", b"CONNECT", b"M-SEARCH"]
EXTENSION_METHODS = [b"PURGEX", b"MKWORKSPACE", b"X-MY-VERB", b"get", b"PLAY", b"BREW", b"GETX", b"M", b"POSTAL"]
BAD_METHODS = [b"G@T", b"", b"\x00GET", b"PRI", b"GE\tT", b"\xffX"]
TARGETS = [b"/", b"/a?b=c", b"/p%20q/%E2%82%AC", b"*", b"http://h/x?y", b"/a#frag", b"/" + b"x" * 40, b"h:80", b"/?"]
VERSIONS = [b"HTTP/1.1"] * 8 + [b"HTTP/1.0", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/0.9", b"HTTP/1"]
HEADER_NAMES = [b"X-A", b"Accept", b"User-Agent", b"X-Forwarded-For", b"Cookie", b"x_y", b"X-\xff", b"X A"]
HEADER_VALUES = [b"v", b" v", b"v ", b"\tv\t", b"a  b", b"", b"  ", b"a,b", b"\x01", b"\xe2\x82\xac", b"v\t "]
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
    b"0\r\n\r\n",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: y\r\n",
    b"HTTP/1.0",
    b"PURGEX ",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"fffffffffffffffff\r\n",
    b";ext=1",
]


def chunked_body(rng: random.Random, body: bytes) -> bytes:
    parts = []
    position = 0
    while position < len(body):
        size = rng.randint(1, len(body) - position)
        size_text = b"%x" % size
        if rng.random() < 0.2:
            size_text = size_text.upper()
        if rng.random() < 0.1:
            size_text = b"0" * rng.randint(1, 18) + size_text
        extension = rng.choice([b"", b"", b";a=b", b";x", b' ;q="v"'])
        parts.append(size_text + extension + b"\r\n" + body[position : position + size] + b"\r\n")
        position += size
    last = rng.choice([b"0\r\n", b"0\r\n", b"000\r\n", b"0;end\r\n"])
    trailers = rng.choice([b"", b"", b"X-T: 1\r\n", b"X-T: 1\r\nX-U: 2\r\n"])
    broken = rng.random()
    if broken < 0.04:
        return b"".join(parts) + b"zz\r\nabc\r\n" + last + b"\r\n"
    if broken < 0.08:
        return b"".join(parts) + b"10000000000000000\r\nabc\r\n" + last + b"\r\n"
    if broken < 0.12 and parts:
        return b"".join(parts)[:-2] + b"XY" + last + b"\r\n"
    return b"".join(parts) + last + trailers + b"\r\n"


def request(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.6:
        method = rng.choice(KNOWN_METHODS)
    elif roll < 0.93:
        method = rng.choice(EXTENSION_METHODS)
    else:
        method = rng.choice(BAD_METHODS)
    lines = [method + b" " + rng.choice(TARGETS) + b" " + rng.choice(VERSIONS)]
    hosts = rng.choices([0, 1, 2], weights=[1, 12, 1])[0]
    lines += [b"Host: " + rng.choice([b"x", b"example.com:8080", b"", b"[::1]"]) for _ in range(hosts)]
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        lines.append(rng.choice(HEADER_NAMES) + b":" + rng.choice(HEADER_VALUES))
    if rng.random() < 0.15:
        lines.append(b"Connection: " + rng.choice([b"close", b"keep-alive", b"upgrade", b"Keep-Alive, close"]))
    if rng.random() < 0.05:
        lines.append(b"Upgrade: websocket")
    if rng.random() < 0.05:
        lines.append(b"Expect: " + rng.choice([b"100-continue", b"100-Continue", b"magic"]))
    if rng.random() < 0.05:
        lines.append(b"TE: trailers")
    body = rng.choice([b"", b"", b"hello", b"0\r\n\r\n", bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))])
    framing = rng.random()
    if framing < 0.35:
        if body or rng.random() < 0.3:
            length = len(body)
            if rng.random() < 0.08:
                length += rng.choice([-1, 1, 3])
            lines.append(
                b"Content-Length: "
                + rng.choice([b"%d", b" %d ", b"%d, %d", b"0%d", b"+%d"]).replace(b"%d", b"%d" % max(length, 0))
            )
        payload = body
    elif framing < 0.6:
        lines.append(
            b"Transfer-Encoding: " + rng.choice([b"chunked"] * 8 + [b"Chunked", b"gzip, chunked", b"chunked, gzip"])
        )
        if rng.random() < 0.04:
            lines.append(b"Content-Length: 5")
        payload = chunked_body(rng, body or b"abc")
    else:
        payload = b""
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if rng.random() < 0.03:
        head = b"\r\n" + head
    return head + payload


def mutate(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.choice([1, 1, 2, 3])):
        position = rng.randint(0, len(data))
        action = rng.random()
        if action < 0.4:
            data[position:position] = rng.choice(TOKENS)
        elif action < 0.7:
            del data[position : position + rng.randint(1, 4)]
        elif data:
            data[min(position, len(data) - 1)] = rng.randrange(256)


def generate(rng: random.Random) -> tuple[bytes, list[int]]:
    """One input: a pipeline of 1 to 4 requests, sometimes mutated, and where it is cut into reads."""
    data = bytearray(b"".join(request(rng) for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))))
    if rng.random() < 0.35:
        mutate(rng, data)
    data += b"\r\n\r\n"
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.choice([0, 0, 1, 1, 2, 3, 6]))))
    return bytes(data), cuts


async def app(scope: dict, receive: Any, send: Any) -> None:
    """Records what it sees (through the scope's state), then answers in a way the path picks."""
    body = b""
    disconnected = False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected = True
            break
        body += message["body"]
        if not message["more_body"]:
            break
    seen = {key: scope[key] for key in ("method", "path", "raw_path", "query_string", "http_version", "headers")}
    seen.update(body=body, disconnected=disconnected)
    scope["state"]["seen"].append(seen)
    if disconnected:
        return
    if scope["raw_path"].endswith(b"x"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body[:4], "more_body": True})
        await send({"type": "http.response.body", "body": body[4:8]})
    else:
        answer = b"ok:" + body[:8]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": answer})


async def run_one(http: str, data: bytes, cuts: list[int]) -> dict[str, Any]:
    """Feed one input to a protocol on ``http``; what the app saw and the client got."""
    protocol, transport, state = connect(app, http, date_header=False, access_log=False)
    seen: list[dict] = []
    state.lifespan_state = {"seen": seen}
    stalled = False
    start = 0
    for end in [*cuts, len(data)]:
        for _ in range(20):
            if transport.reading or transport.closed:
                break
            await asyncio.sleep(0)
        if transport.closed:
            break
        if not transport.reading:
            stalled = True
            break
        protocol.data_received(data[start:end])
        start = end
        for _ in range(3):
            await asyncio.sleep(0)
    for _ in range(30):
        if not state.tasks:
            break
        await asyncio.sleep(0)
    closed_by_server = transport.closed
    if not transport.closed:
        transport.closed = True
        protocol.connection_lost(None)
    for _ in range(100):
        if not state.tasks and not state.connections:
            break
        await asyncio.sleep(0)
    else:
        raise AssertionError(f"{http}: tasks still running after the client left")
    return {
        "seen": seen,
        "written": bytes(transport.written),
        "closed_by_server": closed_by_server,
        "stalled": stalled,
    }


async def compare(data: bytes, cuts: list[int]) -> tuple[dict, dict] | None:
    """The two outcomes if they differ, else None."""
    outcomes = [await run_one(http, data, cuts) for http in PARSERS]
    if outcomes[0] != outcomes[1]:
        return outcomes[0], outcomes[1]
    return None


def describe(data: bytes, cuts: list[int], outcomes: tuple[dict, dict]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return json.dumps(
        {
            "input": data.decode("latin-1"),
            "cuts": cuts,
            **dict(zip(PARSERS, (plain(o) for o in outcomes), strict=True)),
        },
        indent=1,
    )


def fuzz(seed: int, count: int, stop_at_first: bool = True) -> tuple[int, list[str]]:
    """Run ``count`` inputs from ``seed``; (inputs run, descriptions of disagreements)."""
    logging.getLogger("fastserve.error").setLevel(logging.CRITICAL)  # every refusal logs a line
    rng = random.Random(seed)
    failures: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        for done in range(count):
            data, cuts = generate(rng)
            outcomes = loop.run_until_complete(compare(data, cuts))
            if outcomes is not None:
                failures.append(describe(data, cuts, outcomes))
                if stop_at_first:
                    return done + 1, failures
    finally:
        loop.close()
    return count, failures


def _worker(arguments: tuple[int, int]) -> tuple[int, list[str]]:
    seed, count = arguments
    return fuzz(seed, count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000, help="inputs to run (default 10,000)")
    parser.add_argument("--seed", type=int, default=1, help="first seed (each job and batch takes the next)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--batch", type=int, default=20_000, help="inputs per seed")
    args = parser.parse_args(argv)

    from fastserve.protocols import IMPLEMENTATION

    batches = []
    remaining, seed = args.count, args.seed
    while remaining > 0:
        batches.append((seed, min(args.batch, remaining)))
        remaining -= args.batch
        seed += 1
    started = time.monotonic()
    total = 0
    with multiprocessing.Pool(args.jobs) as pool:
        for ran, failures in pool.imap_unordered(_worker, batches):
            total += ran
            if failures:
                print(failures[0])
                print(f"DISAGREEMENT after {total:,} inputs ({IMPLEMENTATION} build)", file=sys.stderr)
                pool.terminate()
                return 1
            print(f"{total:,} inputs, no disagreement ({time.monotonic() - started:.0f} s)", flush=True)
    print(f"{total:,} inputs (seeds {args.seed}..{seed - 1}), {IMPLEMENTATION} build: no disagreement, no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What an ASGI app costs by itself, with no server: the floor under any server's request.

The app is called in-process with a ready HTTP scope (the request wrk sends) and
``receive``/``send`` that never wait; its coroutine is driven by hand, so no
event loop, Task or socket is counted. The figure is what a server cannot save
on that app, however fast it is.

    taskset -c 0 python bench/app_alone.py --app bench.json_starlette:app   # µs per call
    python bench/instructions.py --app-alone --app bench.json_starlette:app  # instructions per call
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REQUEST = {"type": "http.request", "body": b"", "more_body": False}


def load(app: str):
    module, _, attribute = app.partition(":")
    return getattr(importlib.import_module(module), attribute)


def scope() -> dict:
    """The scope a server builds for wrk's GET / (fresh per call: apps may write to it)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "state": {},
        "extensions": {},
    }


def call_many(app, calls: int) -> None:
    async def receive():
        return REQUEST

    async def send(message):
        pass

    for _ in range(calls):
        coroutine = app(scope(), receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            continue
        raise RuntimeError("the app waited on something; app_alone measures apps that answer at once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="bench.apps:plaintext")
    parser.add_argument("--calls", type=int, default=20000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    app = load(args.app)
    call_many(app, 1000)  # warm-up (and the check that it answers without waiting)
    per_call = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        call_many(app, args.calls)
        per_call.append((time.perf_counter() - start) / args.calls * 1e6)
    print(f"{args.app} alone: {statistics.median(per_call):.1f} µs per call (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()

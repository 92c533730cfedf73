"""User-space instructions per request, counted by valgrind's callgrind.

Unlike requests/s, an instruction count does not depend on what else the machine
is doing, so it shows the effect of a change to the hot path that is smaller
than the run-to-run noise of compare.py. The server runs under callgrind with
instrumentation switched on after start-up and a warm-up, wrk loads it for a
fixed time, and the instructions counted are divided by the requests served.

    python bench/instructions.py                      # fastserve, plaintext
    python bench/instructions.py --server uvicorn     # any server compare.py knows
    python bench/instructions.py --app bench.json_starlette:app --annotate 30

Needs valgrind and wrk (apt-get install valgrind wrk). The server is some 50
times slower under callgrind; the count per request is what matters.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from compare import LOAD_CPU, ROOT, SERVER_CPU, free_port, server_command, wait_listening


def wrk(port: int, seconds: int, connections: int) -> int:
    """Requests served in a wrk run."""
    output = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(re.search(r"(\d+) requests in", output).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="fastserve")
    parser.add_argument("--app", default="bench.apps:plaintext")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load while counting")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--annotate", type=int, default=0, metavar="N", help="also print the N costliest functions")
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        server = subprocess.Popen(
            [
                "taskset",
                "-c",
                SERVER_CPU,
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                *server_command(args.server, args.app, port),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, server, timeout=120)
            subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True, capture_output=True)
            wrk(port, 3, args.connections)  # warm-up, then count from zero
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
            requests = wrk(port, args.duration, args.connections)
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
        finally:
            server.terminate()
            server.wait(30)
        time.sleep(0.5)
        dump = min(Path(scratch).glob("callgrind.out.*"))
        report = subprocess.run(["callgrind_annotate", str(dump)], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", report).group(1).replace(",", ""))
    print(f"{args.server} {args.app}: {requests} requests, {total // requests:,} user-space instructions per request")
    if args.annotate:
        rows = report.split("file:function", 1)[1].splitlines()[2 : 2 + args.annotate]
        for row in rows:
            count, _, name = row.strip().partition("  ")
            per_request = int(count.split()[0].replace(",", "")) // requests
            print(f"{per_request:>8,}  {name.strip().split(' [')[0]}")


if __name__ == "__main__":
    main()

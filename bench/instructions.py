"""User-space instructions per request, counted by valgrind's callgrind.

Unlike requests/s, an instruction count does not depend on what else the machine
is doing, so it shows the effect of a change to the hot path that is smaller
than the run-to-run noise of compare.py. The server runs under callgrind with
instrumentation switched on after start-up and a warm-up, wrk loads it for a
fixed time, and the instructions counted are divided by the requests served.

    python bench/instructions.py                      # fastserve, plaintext
    python bench/instructions.py --server uvicorn     # any server compare.py knows
    python bench/instructions.py --app bench.json_starlette:app --annotate 30
    python bench/instructions.py --header "Connection: close" --connections 16   # churn
    python bench/instructions.py --server granian --all-processes   # granian serves from a child
    python bench/instructions.py --app-alone --app bench.json_starlette:app   # the app, no server
    python bench/instructions.py --scenario pipelined    # compare.py's load: pipelined, upload, http2, websocket

With --scenario, the load is compare.py's for that scenario (its app, its
connections, wrk's Lua script, h2load or bench/ws_load.py), and the count is
per request, per 1 MiB upload, or per WebSocket message echoed.

Needs valgrind and wrk (apt-get install valgrind wrk). The server is some 50
times slower under callgrind; the count per request is what matters.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import LOAD_CPU, ROOT, SCENARIOS, SERVER_CPU, Scenario, free_port, run_load, server_command, wait_listening


def wrk(port: int, seconds: int, connections: int, headers: list[str]) -> int:
    """Requests served in a wrk run."""
    extra = [option for header in headers for option in ("-H", header)]
    output = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            *extra,
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(re.search(r"(\d+) requests in", output).group(1))


def load(scenario: Scenario | None, port: int, seconds: int, args: argparse.Namespace, scratch: Path) -> int:
    """Requests (or messages) served: compare.py's load for ``scenario``, else wrk with --connections/--header."""
    if scenario is None:
        return wrk(port, seconds, args.connections, args.header)
    return run_load(scenario, port, seconds, scratch)[3]


def program_total(dump: Path) -> tuple[int, str]:
    """Instructions in one callgrind dump, and callgrind_annotate's report of it."""
    report = subprocess.run(["callgrind_annotate", str(dump)], capture_output=True, text=True, check=True).stdout
    total = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", report)
    return (int(total.group(1).replace(",", "")) if total else 0), report  # no total: nothing ran while counting


def app_alone(app: str) -> int:
    """Instructions per call of the app with no server (bench/app_alone.py), the fixed cost cancelled out."""
    totals = []
    for calls in (200, 2200):
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "callgrind.out"
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "bench/app_alone.py"]
                + ["--app", app, "--calls", str(calls), "--rounds", "1"],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            totals.append(program_total(out)[0])
    return (totals[1] - totals[0]) // 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="fastserve")
    parser.add_argument("--app", default=None, help="default: the scenario's (bench.apps:plaintext)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="compare.py's load instead of plain wrk")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load while counting")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--header", action="append", default=[], help="a header wrk sends (repeatable)")
    parser.add_argument(
        "--all-processes", action="store_true", help="count the server's child processes too (granian, hypercorn)"
    )
    parser.add_argument("--keep", metavar="FILE", help="keep the callgrind dump (for callgrind_annotate --tree=caller)")
    parser.add_argument("--app-alone", action="store_true", help="count the app called in-process, without a server")
    parser.add_argument("--annotate", type=int, default=0, metavar="N", help="also print the N costliest functions")
    args = parser.parse_args()

    scenario = SCENARIOS[args.scenario] if args.scenario else None
    if args.app is None:
        args.app = scenario.app if scenario else "bench.apps:plaintext"
    if args.app_alone:
        print(f"{args.app} alone: {app_alone(args.app):,} user-space instructions per call")
        return
    children = ["--trace-children=yes"] if args.all_processes else []

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
                f"--callgrind-out-file={out}.%p",
                *children,
                *server_command(args.server, args.app, port, http2=bool(scenario and scenario.h2load)),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, server, timeout=120)
            # With --all-processes every process has its own dump, and callgrind_control
            # given no pid addresses all of them.
            targets = [] if args.all_processes else [str(server.pid)]
            subprocess.run(["callgrind_control", "-i", "on", *targets], check=True, capture_output=True)
            load(scenario, port, 3, args, Path(scratch))  # warm-up, then count from zero
            subprocess.run(["callgrind_control", "-z", *targets], check=True, capture_output=True)
            requests = load(scenario, port, args.duration, args, Path(scratch))
            subprocess.run(["callgrind_control", "-d", *targets], check=True, capture_output=True)
            time.sleep(0.5)
            # The dumps taken on request (named ...<pid>.1), not the ones written at exit.
            dumps = sorted(Path(scratch).glob("callgrind.out.*.1"))
            counted = [program_total(dump) for dump in dumps]
            if args.keep and dumps:
                shutil.copy(dumps[0], args.keep)
        finally:
            server.terminate()
            server.wait(30)
    total = sum(count for count, _ in counted)
    report = max(counted)[1]
    name = args.scenario or args.app
    print(f"{args.server} {name}: {requests} requests, {total // requests:,} user-space instructions per request")
    if args.annotate:
        rows = report.split("file:function", 1)[1].splitlines()[2 : 2 + args.annotate]
        for row in rows:
            count, _, name = row.strip().partition("  ")
            per_request = int(count.split()[0].replace(",", "")) // requests
            print(f"{per_request:>8,}  {name.strip().split(' [')[0]}")


if __name__ == "__main__":
    main()

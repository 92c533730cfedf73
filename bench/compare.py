"""Side-by-side throughput of fastserve and its peers, measured in one run.

Each server runs pinned to one CPU (taskset), the load generator (wrk) to
another; after a warm-up, the servers are alternated over several rounds and
the median of each figure is reported, with its ratio to uvicorn. The server's
own CPU seconds per request (from /proc/PID/stat) are reported too: that figure
stays meaningful when the load generator is the bottleneck.

    python bench/compare.py [--rounds 5] [--duration 5] [--servers fastserve,uvicorn]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
LOAD_CPU = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_commands(port: int) -> dict[str, list[str]]:
    python = sys.executable
    app = "bench.apps:plaintext"
    common = ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    return {
        "fastserve": [python, "-m", "fastserve", app, *common],
        "fastserve (h11)": [python, "-m", "fastserve", app, *common, "--http", "h11"],
        "uvicorn": [python, "-m", "uvicorn", app, *common, "--http", "httptools", "--loop", "uvloop"],
        "uvicorn (h11)": [python, "-m", "uvicorn", app, *common, "--http", "h11", "--loop", "uvloop"],
    }


@dataclass
class Result:
    requests_per_second: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us_per_request: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def parse_duration_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port: int, duration: float, connections: int) -> tuple[float, float, int]:
    output = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = parse_duration_ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    return rps, p99, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="fastserve,uvicorn,uvicorn (h11),fastserve (h11)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")

    names = [name.strip() for name in args.servers.split(",")]
    processes: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results = {name: Result() for name in names}
    try:
        for name in names:
            port = free_port()
            command = ["taskset", "-c", SERVER_CPU, *server_commands(port)[name]]
            processes[name] = (subprocess.Popen(command, cwd=ROOT), port)
            wait_listening(port)
            run_wrk(port, args.warmup, args.connections)
        for _ in range(args.rounds):
            for name in names:
                process, port = processes[name]
                before = cpu_seconds(process.pid)
                rps, p99, total = run_wrk(port, args.duration, args.connections)
                used = cpu_seconds(process.pid) - before
                result = results[name]
                result.requests_per_second.append(rps)
                result.p99_ms.append(p99)
                result.cpu_us_per_request.append(used / total * 1e6)
    finally:
        for process, _ in processes.values():
            process.send_signal(signal.SIGINT)
        for process, _ in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    base = results.get("uvicorn")
    print(f"\nplaintext: wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, medians\n")
    print("| server | req/s | ratio | p99 ms | server CPU µs/req | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        result = results[name]
        rps = statistics.median(result.requests_per_second)
        cpu = statistics.median(result.cpu_us_per_request)
        p99 = statistics.median(result.p99_ms)
        ratio = rps / statistics.median(base.requests_per_second) if base else float("nan")
        cpu_ratio = cpu / statistics.median(base.cpu_us_per_request) if base else float("nan")
        print(f"| {name} | {rps:,.0f} | {ratio:.2f}× | {p99:.2f} | {cpu:.1f} | {cpu_ratio:.2f}× |")


if __name__ == "__main__":
    main()

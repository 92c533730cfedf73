"""Side-by-side benchmarks of fastserve and its peers, measured in one run.

Every server runs pinned to one CPU (taskset) and the load generator to the
other. For each scenario the servers are started with the same application,
warmed up, then alternated over several rounds; medians are reported with the
ratio to uvicorn (httptools + uvloop). The server's own CPU time per request
(utime + stime from /proc/PID/stat) is reported too: it stays meaningful when
the load generator is the bottleneck.

    python bench/compare.py                       # everything (about 15 minutes)
    python bench/compare.py --quick               # a smoke run of everything
    python bench/compare.py --scenarios plaintext,pipelined --servers fastserve,uvicorn
    python bench/compare.py --plot bench/ratios.png
    python bench/compare.py --python 3.12,3.13    # only these CPythons (default: each of 3.11-3.13 on PATH)
    python bench/compare.py --python .venv/bin/python   # an environment that has fastserve and the peers

The servers run on every supported CPython found (python3.11, python3.12,
python3.13 on PATH, or installed by pyenv), each from its own environment: a --python path that
already imports fastserve and the peers is used as it is; otherwise a venv is
made for that version under .bench-venvs/ (pip install -e '.[bench]'), once.

Needs wrk (apt-get install wrk) and the peers (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import ws_load  # noqa: E402  (the script's own directory is not a package root)

SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
BENCH_VENVS = ROOT / ".bench-venvs"
SERVER_CPU = "0"
LOAD_CPU = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
MIB = 1024 * 1024

PIPELINE_LUA = """
init = function(args)
  local batch = {}
  for i = 1, 16 do batch[i] = wrk.format(nil, "/") end
  pipelined = table.concat(batch)
end
request = function() return pipelined end
"""
UPLOAD_LUA = """
wrk.method = "POST"
wrk.body = string.rep("u", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def server_command(
    name: str, app: str, port: int, python: str = sys.executable, http2: bool = False, tls: tuple[str, str] = ()
) -> list[str]:
    """How each server is started (by ``python``); the same command lines are quoted in bench/README.md.

    With ``http2``, as each serves HTTP/2 (h2c with prior knowledge, or ALPN h2
    with ``tls``: a certificate and key file).
    """
    bind = ["--host", "127.0.0.1", "--port", str(port)]
    quiet = ["--no-access-log", "--log-level", "warning"]
    uvicorn = [python, "-m", "uvicorn", app, *bind, *quiet, "--loop", "uvloop"]
    commands = {
        "fastserve": [python, "-m", "fastserve", app, *bind, *quiet, *(["--http2"] if http2 else [])],
        "fastserve-wsproto": [python, "-m", "fastserve", app, *bind, *quiet, "--ws", "wsproto"],
        # The readable HTTP/2 engine (h2) under the same stream layer.
        "fastserve-h2": [python, "-m", "fastserve", app, *bind, *quiet, "--http2", "--h2-engine", "h2"],
        # uvicorn's fastest WebSocket implementation is the base of every WebSocket ratio.
        "uvicorn": [*uvicorn, "--http", "httptools", "--ws", "websockets-sansio"],
        "uvicorn-h11": [*uvicorn, "--http", "h11"],
        "uvicorn-websockets": [*uvicorn, "--http", "httptools", "--ws", "websockets"],
        "uvicorn-wsproto": [*uvicorn, "--http", "httptools", "--ws", "wsproto"],
        "socketify": [
            python,
            "-m",
            "socketify",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--interface",
            "asgi",
            "--disable-listen-log",
            "true",
            "--ws-auto-ping",
            "false",
            "--lifespan",
            "off",  # (with "auto", socketify 0.0.31 waits forever on an app that ignores lifespan)
        ],
        "granian": [
            python,
            "-m",
            "granian",
            "--interface",
            "asgi",
            *bind,
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            # (h2c needs --http 2; over TLS "auto" offers h2 by ALPN)
            *(["--http", "2"] if http2 and not tls else []),
            app,
        ],
        "hypercorn": [
            python,
            "-m",
            "hypercorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "-k",
            "uvloop",
            "--log-level",
            "warning",
            app,
        ],
    }
    if tls:
        certfile, keyfile = tls
        for fastserve in ("fastserve", "fastserve-h2"):
            commands[fastserve] += ["--ssl-certfile", certfile, "--ssl-keyfile", keyfile]
        commands["granian"][-1:-1] = ["--ssl-certificate", certfile, "--ssl-keyfile", keyfile]
        commands["hypercorn"][-1:-1] = ["--certfile", certfile, "--keyfile", keyfile]
    return commands[name]


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PKCS#8, which granian needs), made with openssl."""
    certfile, keyfile = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", keyfile, "-out", certfile],
        check=True,
        capture_output=True,
    )
    return certfile, keyfile


@dataclass
class Scenario:
    name: str
    app: str
    unit: str  # what the headline figure counts
    connections: int = 64
    lua: str | None = None
    headers: tuple[str, ...] = ()
    scale: float = 1.0  # headline = requests/s × scale
    message_size: int = 0  # a WebSocket scenario: the echoed message's size (bench/ws_load.py)
    servers: tuple[str, ...] = ()  # who can run it (else HTTP_SERVERS); --servers picks among them
    h2load: str = ""  # an HTTP/2 scenario: h2load's options (the load generator instead of wrk)
    tls: bool = False  # served over TLS (HTTP/2: negotiated by ALPN)
    upload: int = 0  # an HTTP/2 upload scenario: the request body's size


HTTP_SERVERS = ("fastserve", "uvicorn", "uvicorn-h11", "granian", "hypercorn")
WEBSOCKET_SERVERS = (
    "fastserve",
    "fastserve-wsproto",
    "uvicorn",
    "uvicorn-websockets",
    "uvicorn-wsproto",
    "granian",
    "socketify",
)
WEBSOCKET_APP = "bench.apps:websocket_echo"
# uvicorn has no HTTP/2 over cleartext: the HTTP/2 ratios are to hypercorn.
HTTP2_SERVERS = ("fastserve", "fastserve-h2", "hypercorn", "granian")
SCENARIOS = {
    "plaintext": Scenario("plaintext", "bench.apps:plaintext", "req/s"),
    "pipelined": Scenario("pipelined", "bench.apps:plaintext", "req/s", lua=PIPELINE_LUA),
    "json-starlette": Scenario("json-starlette", "bench.json_starlette:app", "req/s"),
    "json-fastapi": Scenario("json-fastapi", "bench.json_fastapi:app", "req/s"),
    "upload": Scenario("upload", "bench.apps:counting_upload", "MB/s", connections=16, lua=UPLOAD_LUA, scale=1.048576),
    "download": Scenario("download", "bench.apps:download", "MB/s", connections=4, scale=64 * 1.048576),
    "churn": Scenario("churn", "bench.apps:plaintext", "conn/s", connections=16, headers=("Connection: close",)),
    "latency": Scenario("latency", "bench.apps:plaintext", "p50 ms", connections=16),
    "idle-memory": Scenario("idle-memory", "bench.apps:plaintext", "KiB/conn"),
    "websocket": Scenario(
        "websocket", WEBSOCKET_APP, "msg/s", connections=16, message_size=1024, servers=WEBSOCKET_SERVERS
    ),
    "websocket-1mib": Scenario(
        "websocket-1mib",
        WEBSOCKET_APP,
        "MB/s",
        connections=4,
        message_size=MIB,
        scale=MIB / 1e6,
        servers=WEBSOCKET_SERVERS,
    ),
    "websocket-idle": Scenario("websocket-idle", WEBSOCKET_APP, "KiB/socket", servers=WEBSOCKET_SERVERS),
    "http2": Scenario("http2", "bench.apps:plaintext", "req/s", connections=16, servers=HTTP2_SERVERS, h2load="-m16"),
    "http2-tls": Scenario(
        "http2-tls", "bench.apps:plaintext", "req/s", connections=16, servers=HTTP2_SERVERS, h2load="-m16", tls=True
    ),
    "http2-upload": Scenario(
        "http2-upload",
        "bench.apps:counting_upload",
        "MB/s",
        connections=16,
        servers=HTTP2_SERVERS,
        h2load="-m4",
        upload=MIB,
        scale=MIB / 1e6,
    ),
}
LOWER_IS_BETTER = {"p50 ms", "KiB/conn", "KiB/socket"}
# How long the idle connections are left idle before RSS is read: longer than
# a second, so that each server's memory is what a connection costs once idle
# (fastserve's sweep lets the parser of a connection idle between requests go).
IDLE_SETTLE = 2.0


@dataclass
class Figures:
    headline: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}: {process.args}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def process_tree(pid: int) -> list[int]:
    """The server and its children (granian and hypercorn serve from a child)."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids.extend(process_tree(int(child)))
    return pids


def cpu_seconds(pid: int) -> float:
    total = 0
    for each in process_tree(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    return sum(int(Path(f"/proc/{each}/statm").read_text().split()[1]) * PAGE_KIB for each in process_tree(pid))


def parse_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(scenario: Scenario, port: int, duration: float, lua_dir: Path) -> tuple[float, float, float, int]:
    """requests/s, p50 ms, p99 ms, requests."""
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{scenario.connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
    ]
    for header in scenario.headers:
        command += ["-H", header]
    if scenario.lua:
        script = lua_dir / f"{scenario.name}.lua"
        script.write_text(scenario.lua)
        command += ["-s", str(script)]
    output = subprocess.run([*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw error responses:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = parse_ms(re.search(r"\s50%\s+(\S+)", output).group(1))
    p99 = parse_ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    return rps, p50, p99, total


async def hold_idle_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await reader.readuntil(b"Hello, world!")
        writers.append(writer)
    return writers


def run_h2load(scenario: Scenario, port: int, duration: float, scratch: Path) -> tuple[float, int]:
    """HTTP/2 requests/s, and requests, from h2load (h2c with prior knowledge, or ALPN over TLS)."""
    command = ["taskset", "-c", LOAD_CPU, "h2load", f"-c{scenario.connections}", *scenario.h2load.split()]
    if scenario.upload:
        body = scratch / "upload"
        if not body.exists():
            body.write_bytes(b"u" * scenario.upload)
        command += ["-d", str(body)]
    scheme = "https" if scenario.tls else "http"
    command += [f"-D{max(1, round(duration))}", f"{scheme}://127.0.0.1:{port}/"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", output)
    streams = int(re.search(r"-m(\d+)", scenario.h2load).group(1))
    # (Requests still in flight when the duration ends may count as failed, one
    # connection's worth at most each; any more is the server's failure.)
    if done is None or int(done.group(3)) > scenario.connections * streams:
        raise RuntimeError(f"h2load saw failed requests:\n{output}")
    succeeded = int(done.group(2))
    return succeeded / max(1, round(duration)), succeeded


def run_ws_load(scenario: Scenario, port: int, duration: float) -> tuple[float, int]:
    """WebSocket messages/s, and messages, from bench/ws_load.py on the load CPU."""
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        sys.executable,
        str(ROOT / "bench" / "ws_load.py"),
        f"--port={port}",
        f"--connections={scenario.connections}",
        f"--size={scenario.message_size}",
        f"--duration={duration}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    messages, seconds = re.fullmatch(r"(\d+) messages in ([\d.]+) s\n", output).groups()
    return int(messages) / float(seconds), int(messages)


def run_load(scenario: Scenario, port: int, duration: float, scratch: Path) -> tuple[float, float, float, int]:
    """The scenario's load generator for ``duration`` s: (rate, p50 ms, p99 ms, requests or messages)."""
    if scenario.message_size:
        rate, total = run_ws_load(scenario, port, duration)
        return rate, float("nan"), float("nan"), total
    if scenario.h2load:
        rate, total = run_h2load(scenario, port, duration, scratch)
        return rate, float("nan"), float("nan"), total
    return run_wrk(scenario, port, duration, scratch)


def measure_idle_memory(pid: int, port: int, count: int, websocket: bool = False) -> float:
    """RSS growth per connection held open: idle HTTP keep-alive connections, or idle WebSockets."""

    async def hold(count: int) -> list[Any]:
        if websocket:
            return [client.transport for client in await ws_load.hold_idle(port, count)]
        return await hold_idle_connections(port, count)

    async def run() -> float:
        warm = await hold(50)
        time.sleep(0.5)
        before = rss_kib(pid)
        held = await hold(count)
        time.sleep(IDLE_SETTLE)
        after = rss_kib(pid)
        for writer in warm + held:
            writer.close()
        return (after - before) / count

    return asyncio.run(run())


class Running:
    def __init__(self, name: str, app: str, python: str, http2: bool = False, tls: tuple[str, str] = ()) -> None:
        self.port = free_port()
        command = ["taskset", "-c", SERVER_CPU, *server_command(name, app, self.port, python, http2, tls)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_listening(self.port, self.process)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_scenario(
    scenario: Scenario, names: list[str], args: argparse.Namespace, lua_dir: Path, python: str
) -> dict[str, Figures]:
    figures = {name: Figures() for name in names}
    servers: dict[str, Running] = {}
    try:
        for name in names:
            tls = self_signed_certificate(lua_dir) if scenario.tls else ()
            servers[name] = Running(name, scenario.app, python, bool(scenario.h2load), tls)
        if scenario.unit in ("KiB/conn", "KiB/socket"):
            for name in names:
                running = servers[name]
                figures[name].headline.append(
                    measure_idle_memory(
                        running.process.pid, running.port, args.idle_connections, scenario.unit == "KiB/socket"
                    )
                )
            return figures

        def load(port: int, duration: float) -> tuple[float, float, float, int]:
            return run_load(scenario, port, duration, lua_dir)

        for name in names:
            load(servers[name].port, args.warmup)
        for _ in range(args.rounds):
            for name in names:  # alternated: every round visits every server
                running = servers[name]
                before = cpu_seconds(running.process.pid)
                rps, p50, p99, total = load(running.port, args.duration)
                used = cpu_seconds(running.process.pid) - before
                result = figures[name]
                result.headline.append(p50 if scenario.unit == "p50 ms" else rps * scenario.scale)
                result.p99_ms.append(p99)
                if scenario.unit == "MB/s":  # CPU seconds per GB moved
                    result.server_cpu.append(used / (total * scenario.scale / 1000))
                else:
                    result.server_cpu.append(used / max(total, 1) * 1e6)
    finally:
        for running in servers.values():
            running.stop()
    return figures


def ratio(value: float, base: float) -> float:
    if not base or base != base:
        return float("nan")
    return value / base


def print_table(results: dict[str, dict[str, Figures]]) -> None:
    print("| scenario | server | figure | ratio to uvicorn (http2: hypercorn) | p99 ms | server CPU | CPU ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for scenario_name, figures in results.items():
        unit = SCENARIOS[scenario_name].unit
        base = figures.get("uvicorn") or figures.get("hypercorn")
        for name in figures:
            figure = figures[name]
            value = figure.median(figure.headline)
            cpu = figure.median(figure.server_cpu)
            base_value = base.median(base.headline) if base else float("nan")
            base_cpu = base.median(base.server_cpu) if base else float("nan")
            p99 = figure.median(figure.p99_ms)
            cpu_unit = {"MB/s": "s/GB", "msg/s": "µs/msg"}.get(unit, "µs/req")
            if not figure.server_cpu:  # idle-memory measures no requests
                figure_text = f"{value:,.1f} {unit} | {ratio(value, base_value):.2f}×"
                print(f"| {scenario_name} | {name} | {figure_text} | — | — | — |")
                continue
            print(
                f"| {scenario_name} | {name} | {value:,.1f} {unit} | {ratio(value, base_value):.2f}× | "
                f"{p99:.2f} | {cpu:.2f} {cpu_unit} | {ratio(cpu, base_cpu):.2f}× |"
            )


def plot(results: dict[str, dict[str, Figures]], names: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [name for name in results if "uvicorn" in results[name]]
    names = [name for name in names if all(name in results[scenario] for scenario in scenarios)]
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(scenarios)), 4.5))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        values = []
        for scenario in scenarios:
            figures = results[scenario]
            value = figures[name].median(figures[name].headline)
            base = figures["uvicorn"].median(figures["uvicorn"].headline)
            better = base / value if SCENARIOS[scenario].unit in LOWER_IS_BETTER else value / base
            values.append(better)
        axes.bar([x + index * width for x in range(len(scenarios))], values, width, label=name)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(scenarios))], scenarios, rotation=20)
    axes.set_ylabel("× uvicorn (higher is better)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"chart written to {path}")


def interpreter_version(python: str) -> str | None:
    """'3.12.1' for a CPython at ``python``, else None."""
    try:
        output = subprocess.run(
            [python, "-c", "import platform; print(platform.python_implementation(), platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
    except OSError:
        return None
    return output[1] if output[:1] == ["CPython"] else None


def has_servers(python: str) -> bool:
    """Whether ``python`` imports fastserve (this checkout's) and the peers."""
    check = "import fastserve, uvicorn, granian, hypercorn, starlette, fastapi; print(fastserve.__file__)"
    result = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd="/", timeout=60)
    return result.returncode == 0 and Path(result.stdout.strip()).is_relative_to(ROOT)


def bench_environment(python: str) -> str:
    """The interpreter the servers run with: ``python`` if it has them all, else a venv of its version made for it."""
    if has_servers(python):
        return python
    version = interpreter_version(python)
    venv = BENCH_VENVS / ".".join(version.split(".")[:2])
    bench_python = str(venv / "bin" / "python")
    if not has_servers(bench_python) if venv.exists() else True:
        print(f"making {venv} for CPython {version} (pip install -e '.[bench]') ...", file=sys.stderr)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([bench_python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[bench]"], check=True)
    return bench_python


def find_python(version: str) -> str | None:
    """CPython ``version`` (such as 3.12): on PATH, or else installed by pyenv (its shims run only selected ones)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(
        pyenv_root.glob(f"versions/{version}.*/bin/python{version}"),
        key=lambda path: [int(part) for part in path.parts[-3].split(".") if part.isdigit()],
        reverse=True,  # the newest patch release first
    )
    candidates = [shutil.which(f"python{version}"), *map(str, installed)]
    return next((path for path in candidates if path and interpreter_version(path) is not None), None)


def chosen_interpreters(spec: str | None) -> list[str]:
    """Interpreter paths from --python (versions such as 3.12, or paths); by default every supported one found."""
    wanted = spec.split(",") if spec else list(SUPPORTED_PYTHONS)
    found = []
    for item in wanted:
        item = item.strip()
        if item == f"{sys.version_info.major}.{sys.version_info.minor}":
            path = sys.executable  # (this environment: it has the peers if bench/'s extras are installed)
        else:
            path = find_python(item) if item in SUPPORTED_PYTHONS else item
        if path and interpreter_version(path) is not None:
            found.append(os.path.abspath(path))  # (not resolved: a venv's python is a link out of it)
        elif spec:
            sys.exit(f"--python {item}: no CPython found there")
    return found or [sys.executable]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--servers",
        help=f"comma-separated (default: {','.join(HTTP_SERVERS)}; "
        f"for the WebSocket scenarios {','.join(WEBSOCKET_SERVERS)})",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--idle-connections", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="everything, briefly: a smoke check")
    parser.add_argument("--plot", metavar="PNG", help="also write a bar chart of the ratios (one per CPython)")
    parser.add_argument(
        "--python",
        metavar="LIST",
        help=f"comma-separated CPython versions or interpreter paths (default: each of {', '.join(SUPPORTED_PYTHONS)} "
        "found on PATH)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup, args.idle_connections = 1, 1, 1, 200
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    if any(name.startswith("http2") for name in args.scenarios.split(",")) and not shutil.which("h2load"):
        sys.exit("h2load is not installed: apt-get install nghttp2-client")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.idle_connections)), hard))

    chosen = [name.strip() for name in args.servers.split(",")] if args.servers else None
    unknown = [name for name in args.scenarios.split(",") if name not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenarios: {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    interpreters = [bench_environment(python) for python in chosen_interpreters(args.python)]
    tables = []
    for python in interpreters:
        version = interpreter_version(python)
        results = {}
        with tempfile.TemporaryDirectory() as lua_dir:
            for scenario_name in args.scenarios.split(","):
                print(f"running {scenario_name} on CPython {version} ...", file=sys.stderr)
                scenario = SCENARIOS[scenario_name]
                able = scenario.servers or HTTP_SERVERS
                names = [name for name in chosen if name in able] if chosen else list(able)
                results[scenario_name] = run_scenario(scenario, names, args, Path(lua_dir), python)
        tables.append((version, python, results))
    print(
        f"\n{args.rounds} round(s) of {args.duration:g} s per server and scenario, medians; "
        f"server on CPU {SERVER_CPU}, load (wrk, bench/ws_load.py) on CPU {LOAD_CPU}"
    )
    for version, python, results in tables:
        print(f"\n### CPython {version} ({python})\n")
        print_table(results)
        if args.plot:
            path = (
                args.plot if len(tables) == 1 else str(Path(args.plot).with_stem(f"{Path(args.plot).stem}-{version}"))
            )
            plot(results, chosen or [*HTTP_SERVERS, *WEBSOCKET_SERVERS], path)


if __name__ == "__main__":
    main()

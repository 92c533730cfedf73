"""--workers: the supervisor and its worker processes, with real processes and real signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.processes import ROOT, Process, run_cli

pytestmark = pytest.mark.timeout(90)


class RequestLoop:
    """Requests, one connection each, in a loop on a thread: which worker answered, and what failed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pids: list[int] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url + "/pid")
                    response.raise_for_status()
                    self.pids.append(int(response.text))
                except httpx.HTTPError as exc:
                    self.failures.append(exc)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def wait_for_requests(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        target = len(self.pids) + count
        while len(self.pids) < target:
            assert time.monotonic() < deadline, "requests stopped getting answers"
            time.sleep(0.01)


def next_line(process: Process, pattern: str) -> re.Match[str]:
    """The first line matching ``pattern``, taken out so that the next call finds the next one."""
    match = process.wait_line(pattern, timeout=20)
    process.lines.remove(match.string)
    return match


def ready_pids(process: Process, count: int) -> list[int]:
    """The pids of the next ``count`` workers that report ready."""
    return [int(next_line(process, r"Worker \[(\d+)\] is ready").group(1)) for _ in range(count)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(*args: str) -> tuple[Process, str, list[int]]:
    process = Process("tests.cli_apps:app", "--port", "0", "--no-access-log", *args)
    url = process.url()
    workers = int(re.search(r"--workers (\d+)", " ".join(args)).group(1))
    return process, url, ready_pids(process, workers)


def stop(process: Process) -> int:
    process.proc.send_signal(signal.SIGTERM)
    return process.finish(30)


def test_killed_worker_is_replaced():
    process, url, pids = start("--workers", "2")
    try:
        with RequestLoop(url) as loop:
            loop.wait_for_requests(20)
            os.kill(pids[0], signal.SIGKILL)
            process.wait_line(rf"Worker \[{pids[0]}\] was killed by SIGKILL; replacing it")
            (new_pid,) = ready_pids(process, 1)
            seen = len(loop.pids)
            loop.wait_for_requests(50)
        # A client requests one at a time: at most the one in flight on the killed worker fails.
        assert len(loop.failures) <= 1, loop.failures
        assert pids[0] not in loop.pids[seen:]
        assert alive(new_pid) and alive(pids[1])
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_sighup_replaces_every_worker_without_a_failed_request():
    process, url, old = start("--workers", "2")
    try:
        with RequestLoop(url) as loop:
            loop.wait_for_requests(20)
            process.proc.send_signal(signal.SIGHUP)
            new = ready_pids(process, 2)
            for pid in old:
                process.wait_line(rf"Worker \[{pid}\] stopped", timeout=20)
            seen = len(loop.pids)
            loop.wait_for_requests(50)
        assert loop.failures == []
        assert set(new).isdisjoint(old)
        assert set(loop.pids[seen:]) <= set(new)
        assert not any(alive(pid) for pid in old)
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_startup_failure_stops_everything_with_exit_3():
    started = time.monotonic()
    result = run_cli("tests.cli_apps:failing_startup", "--workers", "2", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3
    assert time.monotonic() - started < 15
    # The first worker starts alone: the failure is told once, and nothing is respawned.
    assert result.stderr.count("cannot reach the database") == 1, result.stderr
    assert len(re.findall(r"Started server process", result.stderr)) == 1, result.stderr
    assert result.stderr.count("running on") == 1, result.stderr


def test_max_requests_recycles_workers_without_failures():
    process, url, first = start("--workers", "2", "--limit-max-requests", "5", "--limit-max-requests-jitter", "2")
    try:
        with RequestLoop(url) as loop:
            recycled = {int(next_line(process, r"Worker \[(\d+)\] recycled").group(1)) for _ in range(2)}
            # The limit is checked once a second, so a worker may serve more before it goes.
            deadline = time.monotonic() + 20
            while not set(loop.pids) - set(first):
                assert time.monotonic() < deadline, "no new worker answered"
                time.sleep(0.01)
            loop.wait_for_requests(20)
        assert loop.failures == []
        assert recycled <= set(first) and len(recycled) == 2
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_single_process_max_requests_exits_cleanly():
    process = Process("tests.cli_apps:app", "--port", "0", "--limit-max-requests", "3")
    try:
        url = process.url()
        for _ in range(3):
            assert httpx.get(url).text == "hello"
        assert process.finish(10) == 0
    finally:
        process.finish(1)


def test_stuck_worker_is_killed_and_replaced():
    process, url, pids = start("--workers", "2", "--timeout-worker-healthcheck", "1")
    try:
        # /block sleeps in its worker's event loop for 30 s.
        threading.Thread(target=lambda: _ignore_errors(url + "/block?30"), daemon=True).start()
        match = process.wait_line(r"Worker \[(\d+)\] did not answer within 1 s; killing it", timeout=20)
        assert int(match.group(1)) in pids
        ready_pids(process, 1)
        assert httpx.get(url).text == "hello"
        assert stop(process) == 0
    finally:
        process.finish(1)


def _ignore_errors(url: str) -> None:
    try:
        httpx.get(url, timeout=40)
    except httpx.HTTPError:
        pass


def test_ttin_adds_and_ttou_removes_a_worker():
    process, url, pids = start("--workers", "2")
    try:
        process.proc.send_signal(signal.SIGTTIN)
        process.wait_line(r"now 3 worker\(s\)")
        (third,) = ready_pids(process, 1)
        process.proc.send_signal(signal.SIGTTOU)
        process.wait_line(r"now 2 worker\(s\)")
        process.wait_line(r"Worker \[\d+\] stopped")
        assert sum(alive(pid) for pid in [*pids, third]) == 2
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_workers_share_a_unix_socket_and_a_tcp_port(tmp_path):
    path = tmp_path / "app.sock"
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    process = Process(
        "tests.cli_apps:app",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--bind",
        f"unix:{path}",
        "--uds-permissions",
        "660",
    )
    try:
        ready_pids(process, 2)
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "hello"
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
            assert client.get("http://localhost/").text == "hello"
        assert stop(process) == 0
    finally:
        process.finish(1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's")
def test_reuse_port_gives_each_worker_its_own_listener():
    process, url, pids = start("--workers", "2", "--reuse-port")
    try:
        with RequestLoop(url) as loop:
            loop.wait_for_requests(100)
        assert loop.failures == []
        assert set(loop.pids) == set(pids)  # the kernel spreads new connections over both
        warned = any("net.ipv4.tcp_migrate_req is 0" in line for line in process.lines)
        assert warned == (migrate_req() == "0")
        assert stop(process) == 0
    finally:
        process.finish(1)


def migrate_req() -> str | None:
    try:
        with open("/proc/sys/net/ipv4/tcp_migrate_req") as file:
            return file.read().strip()
    except OSError:
        return None


def test_workers_that_keep_dying_are_replaced_ever_more_slowly():
    process, url, (pid, _) = start("--workers", "2")
    try:
        delays = []
        for _ in range(3):
            os.kill(pid, signal.SIGKILL)
            process.wait_line(rf"Worker \[{pid}\] was killed by SIGKILL; replacing it")
            if delays or any("keep dying" in line for line in process.lines):
                delays.append(float(next_line(process, r"Workers keep dying: next one in ([\d.]+) s").group(1)))
            else:
                delays.append(0.0)  # the first death is replaced at once
            (pid,) = ready_pids(process, 1)
        assert delays[0] == 0.0 and 0 < delays[1] < delays[2], delays
        assert httpx.get(url).text == "hello"
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_systemd_socket_activation():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # systemd passes its sockets from fd 3 on, and names the process that should take them.
    launcher = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
        "os.execv(sys.executable, [sys.executable, '-m', 'fastserve', 'tests.cli_apps:app', '--port', '1'])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, str(listener.fileno())],
        cwd=ROOT,
        pass_fds=[listener.fileno()],
        stderr=subprocess.PIPE,
        text=True,
    )
    listener.close()
    try:
        line = proc.stderr.readline()
        while "running on" not in line:
            assert line, "server did not start"
            line = proc.stderr.readline()
        assert f"127.0.0.1:{port}" in line  # the passed socket, not --port 1
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "hello"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


def test_the_supervisor_never_imports_the_application(tmp_path):
    log = tmp_path / "imports"
    process = Process("tests.marker_app:app", "--port", "0", "--workers", "2", env={"FASTSERVE_IMPORT_LOG": str(log)})
    try:
        pids = ready_pids(process, 2)
        assert sorted(int(line) for line in log.read_text().split()) == sorted(pids)
        assert process.proc.pid not in pids
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_workers_lifetime_replaces_workers_without_failures():
    process, url, first = start("--workers", "2", "--workers-lifetime", "1")
    try:
        with RequestLoop(url) as loop:
            process.wait_line(r"reached --workers-lifetime; replacing it", timeout=20)
            replacements = ready_pids(process, 1)
            process.wait_line(rf"Worker \[({first[0]}|{first[1]})\] stopped", timeout=20)
            loop.wait_for_requests(20)
        assert loop.failures == []
        assert set(replacements).isdisjoint(first)
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_workers_max_rss_replaces_a_worker():
    process, url, first = start("--workers", "2", "--workers-max-rss", "1")  # every worker is above 1 MiB
    try:
        line = process.wait_line(r"Worker \[(\d+)\] uses \d+ MiB, above --workers-max-rss; replacing it", timeout=20)
        assert int(re.search(r"\[(\d+)\]", line.string).group(1)) in first
        (replacement,) = ready_pids(process, 1)
        assert replacement not in first
        assert stop(process) == 0
    finally:
        process.finish(1)


def test_a_worker_retiring_during_shutdown_is_not_replaced():
    """Found by a hang: a replacement started after SIGTERM was never told to stop."""
    from multiprocessing import Pipe
    from types import SimpleNamespace

    from fastserve import Config
    from fastserve.supervisor import Supervisor

    supervisor = Supervisor(Config("tests.cli_apps:app", workers=2, log_config=None))
    ours, theirs = Pipe()
    worker = SimpleNamespace(connection=ours, pid=1, rss=0, retiring=False)
    theirs.send(("retiring", 0))
    supervisor.stopping = True
    supervisor._read_messages(worker)
    assert worker.retiring and supervisor.workers == []

"""``gunicorn -k fastserve.workers.FastserveWorker``: end to end, with gunicorn's settings."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx
import pytest
import trustme

from tests import processes
from tests.conftest import closed_after, read_response
from tests.processes import ROOT

pytest.importorskip("gunicorn")
pytestmark = [pytest.mark.timeout(60), pytest.mark.skipif(sys.platform == "win32", reason="gunicorn is POSIX")]


class Gunicorn:
    def __init__(self, *args: str) -> None:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port = probe.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "fastserve.workers.FastserveWorker", "tests.cli_apps:app"]
            + ["-b", f"127.0.0.1:{self.port}", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        processes.started.append(self)  # (what it printed is checked when the test ends)

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        code = self.stop()
        if exc_type is None:  # (a failure inside the block is the one to report, not the exit code)
            assert code == 0, f"gunicorn exited with {code}:\n" + "\n".join(self.err)

    def check_output(self, check) -> None:
        self.stop()
        for reader in self.readers:
            reader.join(10)
        check.output("gunicorn's stderr", self.err)
        check.output("gunicorn's stdout", self.out)

    @staticmethod
    def _collect(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, lines: list[str], pattern: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(lines):
                if re.search(pattern, line):
                    return line
            assert time.monotonic() < deadline, f"no {pattern!r} in {lines}"
            time.sleep(0.02)

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def wait_http(url: str, **client: object) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, **client)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "gunicorn did not start serving"
            time.sleep(0.05)


def test_gunicorn_serves_with_its_settings():
    fmt = 'GUNI %(h)s "%(r)s" %(s)s %(b)s %({user-agent}i)s'
    with Gunicorn("-w", "2", "--keep-alive", "2", "--access-logfile", "-", "--access-logformat", fmt) as server:
        response = wait_http(server.url("/hello?x=1"), headers={"User-Agent": "probe"})
        assert response.text == "hello"
        line = server.wait_for(server.out, r"^GUNI ")
        assert line == 'GUNI 127.0.0.1 "GET /hello?x=1 HTTP/1.1" 200 5 probe'
        # -w 2: two workers boot, and neither is the arbiter.
        booted = booted_workers(server, 2)
        assert len(booted) == 2 and server.proc.pid not in booted
        pids = {int(httpx.get(server.url("/pid")).text) for _ in range(20)}
        assert pids <= booted
        # --keep-alive 2: an idle connection is closed after 1 to 3 s (the sweep ticks once a second).
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == 200
            data, waited = closed_after(sock, timeout=10)
        assert data == b"" and 0.9 <= waited <= 4.0


def booted_workers(server: Gunicorn, count: int) -> set[int]:
    deadline = time.monotonic() + 20
    while True:
        pids = {
            int(match.group(1))
            for line in list(server.err)
            if (match := re.search(r"Booting worker with pid: (\d+)", line))
        }
        if len(pids) >= count:
            return pids
        assert time.monotonic() < deadline, server.err
        time.sleep(0.02)


def test_gunicorn_request_limits_and_proxy_settings():
    with Gunicorn(
        "--limit-request-line", "100",
        "--limit-request-fields", "6",
        "--limit-request-field_size", "200",
        "--forwarded-allow-ips", "127.0.0.1",
    ) as server:  # fmt: skip
        wait_http(server.url())

        def status_of(request: bytes) -> int:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(request)
                return read_response(sock)[0]

        assert status_of(b"GET /" + b"a" * 120 + b" HTTP/1.1\r\nHost: x\r\n\r\n") == 414
        assert status_of(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 6 + b"\r\n") == 431
        assert status_of(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"v" * 200 + b"\r\n\r\n") == 431
        assert status_of(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 3 + b"\r\n") == 200
        # (httpx sends six fields with this one.)
        forwarded = httpx.get(server.url("/client"), headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.text == "203.0.113.9"  # 127.0.0.1 is a trusted proxy
    with Gunicorn("--forwarded-allow-ips", "10.1.1.1") as server:
        forwarded = wait_http(server.url("/client"), headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.text == "127.0.0.1"  # not trusted: the header is ignored


def test_gunicorn_proxy_protocol():
    with Gunicorn("--proxy-protocol", "v1", "--proxy-allow-from", "127.0.0.1") as server:
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start serving"
                time.sleep(0.05)
        with sock:
            sock.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET /client HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[2] == b"203.0.113.7"


def test_gunicorn_max_requests_jitter_reaches_the_server():
    from gunicorn.config import Config as GunicornConfig
    from gunicorn.glogging import Logger

    from fastserve.workers import FastserveWorker

    cfg = GunicornConfig()
    cfg.set("max_requests", 10)
    cfg.set("max_requests_jitter", 5)
    limits = set()
    for _ in range(40):
        worker = FastserveWorker(0, os.getpid(), [], None, 30, cfg, Logger(cfg))
        limits.add(worker.config_options()["limit_max_requests"])
    assert limits <= set(range(10, 16)) and len(limits) > 1


def test_graceful_timeout_lets_a_request_finish():
    with Gunicorn("--graceful-timeout", "10") as server:
        wait_http(server.url())
        with httpx.stream("GET", server.url("/stream?2"), timeout=15) as response:
            chunks = response.iter_bytes()
            assert next(chunks) == b"started\n"
            server.proc.send_signal(signal.SIGTERM)
            assert b"".join(chunks) == b"finished\n"
        assert server.proc.wait(20) == 0


def test_max_requests_restarts_the_worker():
    with Gunicorn("--max-requests", "3") as server:
        first = int(wait_http(server.url("/pid")).text)
        pids = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2:
            assert time.monotonic() < deadline, pids
            try:
                pids.add(int(httpx.get(server.url("/pid")).text))
            except httpx.TransportError:
                time.sleep(0.05)
        assert first in pids


def test_gunicorn_tls(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    keyfile.write_bytes(cert.private_key_pem.bytes())
    with Gunicorn("--certfile", str(certfile), "--keyfile", str(keyfile)) as server:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        assert wait_http(server.url(scheme="https"), verify=context).text == "hello"


def test_boot_failure_stops_gunicorn():
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-k", "fastserve.workers.FastserveWorker"]
        + ["tests.cli_apps:failing_startup", "-b", "127.0.0.1:0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 3, proc.stderr  # gunicorn's "worker failed to boot"
    assert "cannot reach the database" in proc.stderr

"""``gunicorn -k fastserve.workers.FastserveWorker``: end to end, with gunicorn's settings."""

from __future__ import annotations

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
        threading.Thread(target=self._collect, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._collect, args=(self.proc.stderr, self.err), daemon=True).start()

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
    server = Gunicorn("-w", "2", "--keep-alive", "2", "--access-logfile", "-", "--access-logformat", fmt)
    try:
        response = wait_http(server.url("/hello?x=1"), headers={"User-Agent": "probe"})
        assert response.text == "hello"
        line = server.wait_for(server.out, r"^GUNI ")
        assert line == 'GUNI 127.0.0.1 "GET /hello?x=1 HTTP/1.1" 200 5 probe'
        pids = {int(httpx.get(server.url("/pid")).text) for _ in range(20)}
        assert pids and all(pid != server.proc.pid for pid in pids)
    finally:
        assert server.stop() == 0


def test_graceful_timeout_lets_a_request_finish():
    server = Gunicorn("--graceful-timeout", "10")
    try:
        wait_http(server.url())
        with httpx.stream("GET", server.url("/stream?2"), timeout=15) as response:
            chunks = response.iter_bytes()
            assert next(chunks) == b"started\n"
            server.proc.send_signal(signal.SIGTERM)
            assert b"".join(chunks) == b"finished\n"
        assert server.proc.wait(20) == 0
    finally:
        server.stop()


def test_max_requests_restarts_the_worker():
    server = Gunicorn("--max-requests", "3")
    try:
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
    finally:
        assert server.stop() == 0


def test_gunicorn_tls(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    keyfile.write_bytes(cert.private_key_pem.bytes())
    server = Gunicorn("--certfile", str(certfile), "--keyfile", str(keyfile))
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        assert wait_http(server.url(scheme="https"), verify=context).text == "hello"
    finally:
        assert server.stop() == 0


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

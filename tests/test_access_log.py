"""Access lines: uvicorn's default, gunicorn's format atoms, and JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import threading

import httpx
import pytest

from fastserve.access_log import AccessLogFormat, AccessLogFormatError
from tests.apps import hello, streaming
from tests.conftest import read_response, recv_all, run_server, wait_for
from tests.processes import ROOT, run_cli


@pytest.fixture
def http() -> str:
    """What these tests check happens before or beside parsing: one parser is enough."""
    return "httptools"


@pytest.fixture
def access_lines(caplog):
    caplog.set_level(logging.INFO, logger="fastserve.access")

    def lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name == "fastserve.access"]

    return lines


def test_gunicorn_atoms(serve, access_lines):
    fmt = '%(h)s %(l)s "%(r)s" %(s)s %(b)s %(m)s %(U)s %(q)s %(H)s %({x-id}i)s %({content-type}o)s %(D)s 100%%'
    with serve(hello, access_log_format=fmt) as server:
        response = httpx.get(server.url("/path?a=1"), headers={"X-Id": b"abc\xe9"})
        assert response.text == "hello"
    (line,) = access_lines()
    match = re.fullmatch(
        r'127\.0\.0\.1 - "GET /path\?a=1 HTTP/1\.1" 200 5 GET /path a=1 HTTP/1\.1 abc\\xe9 text/plain (\d+) 100%',
        line,
    )
    assert match, line
    assert int(match.group(1)) > 0  # microseconds


def test_streamed_response_bytes_and_duration_atoms(serve, access_lines):
    with serve(streaming, access_log_format="%(B)s %(b)s %(M)s %(L)s %(T)s") as server:
        assert httpx.get(server.url()).text == "one,two,three"
    (line,) = access_lines()
    assert re.fullmatch(r"13 13 \d+ \d+\.\d{6} \d+", line), line


def test_json_lines(serve, access_lines):
    with serve(hello, access_log_json=True) as server:
        httpx.get(server.url("/j?x=%22"), headers={"User-Agent": 'tester "1"', "X-Forwarded-For": "203.0.113.5"})
    (line,) = access_lines()
    entry = json.loads(line)
    assert entry["client"] == "203.0.113.5:0"  # named by the trusted proxy in front
    assert (entry["method"], entry["path"], entry["query"], entry["status"]) == ("GET", "/j", "x=%22", 200)
    assert entry["bytes"] == 5 and entry["user_agent"] == 'tester "1"' and entry["referer"] is None
    assert entry["duration_ms"] >= 0 and entry["http_version"] == "1.1"


def test_unknown_atom_is_refused():
    with pytest.raises(AccessLogFormatError):
        AccessLogFormat("%(h)s %(zz)s")
    result = run_cli("tests.cli_apps:app", "--access-log-format", "%(nope)s")
    assert result.returncode == 2  # a usage error, as click says them
    assert result.stderr.splitlines()[-1] == "Error: --access-log-format: unknown atom %(nope)s"


def test_custom_format_line_is_the_whole_log_line():
    """With the default log config, an access line in a custom format is printed alone."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastserve", "tests.cli_apps:app", "--port", "0", "--limit-max-requests", "1"]
        + ["--access-log-format", "ACCESS %(s)s %(r)s"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        while url is None:
            line = proc.stderr.readline()
            assert line, "server did not start"
            match = re.search(r"running on (http://\S+)", line)
            url = match and match.group(1)
        assert httpx.get(url + "/x").text == "hello"
        stdout, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert stdout == "ACCESS 200 GET /x HTTP/1.1\n"


def test_the_remaining_gunicorn_atoms(serve, access_lines, monkeypatch):
    monkeypatch.setenv("FASTSERVE_TEST_ENV", "from-env")
    fmt = "%(t)s|%(a)s|%(f)s|%(p)s|%(u)s|%({FASTSERVE_TEST_ENV}e)s|%({NOT_SET_ANYWHERE}e)s"
    with serve(hello, access_log_format=fmt) as server:
        httpx.get(server.url(), headers={"User-Agent": "probe/1", "Referer": "http://example.com/from"})
    (line,) = access_lines()
    when, agent, referer, pid, user, env, unset = line.split("|")
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", when), when
    assert (agent, referer, pid, user) == ("probe/1", "http://example.com/from", f"<{os.getpid()}>", "-")
    assert (env, unset) == ("from-env", "-")


@pytest.mark.tracebacks("Exception in ASGI application")
def test_errors_the_server_writes_have_access_lines(access_lines):
    release = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/boom":
            raise RuntimeError("app bug")
        if scope["path"] == "/block":
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await hello(scope, receive, send)

    def exchange(server, data: bytes) -> bytes:
        with server.connect() as sock:
            sock.sendall(data)
            return recv_all(sock)

    with run_server(app, limit_concurrency=1, limit_request_line=64, timeout_request_header=1) as server:
        assert exchange(server, b"NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert exchange(server, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414 ")
        assert exchange(server, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 500 ")
        assert exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 408 ")
        with server.connect() as blocked:
            blocked.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: server.state.in_flight == 1)
            assert exchange(server, b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503 ")
            release.set()
            assert read_response(blocked)[0] == 200
    lines = [line.split(" - ", 1)[1] for line in access_lines()]
    assert lines == [
        '"-" 400',
        '"-" 414',
        '"GET /boom HTTP/1.1" 500',
        '"-" 408',
        '"GET /busy HTTP/1.1" 503',
        '"GET /block HTTP/1.1" 200',
    ]


def test_error_lines_in_a_custom_format_and_json(access_lines):
    with run_server(hello, access_log_format='%(h)s "%(r)s" %(s)s %(b)s') as server, server.connect() as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        recv_all(sock)
    with run_server(hello, access_log_json=True) as server, server.connect() as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        recv_all(sock)
    custom, as_json = access_lines()
    assert custom == '127.0.0.1 "-" 400 11'
    entry = json.loads(as_json)
    assert (entry["method"], entry["status"], entry["client"].split(":")[0]) == ("-", 400, "127.0.0.1")

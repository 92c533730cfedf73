"""The command line: flags, environment, exit codes, signals and logging, in real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from fastserve import __version__
from fastserve.cli import main, parse_args
from tests.processes import ROOT, Process, run_cli


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert re.fullmatch(
        rf"fastserve {re.escape(__version__)} \(http: (cython|python)/httptools, http2: (cython|python)/(nghttp2|h2), "
        rf"websocket: (cython|python), loop: uvloop, CPython [\d.]+\)\n",
        result.stdout,
    )
    assert "http2: off," in run_cli("--no-http2", "--version").stdout  # (HTTP/2 is on by default)


USAGE_LINES = ["Usage: fastserve [OPTIONS] APP", "Try 'fastserve --help' for help.", ""]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.cli_apps:app", "--port", "abc"], "Invalid value for '--port': 'abc' is not a valid integer."),
        (["tests.cli_apps:app", "--loop", "bogus"], "Invalid value for '--loop'"),
        (["tests.cli_apps:app", "--limit-request-fields", "0"], "--limit-request-fields must be at least 1; got 0"),
        (["tests.cli_apps:app", "--no-such-flag"], "No such option '--no-such-flag'."),
        (["tests.cli_apps:app", "--header", "bad header"], "--header"),
        (["tests.cli_apps:app", "--workers", "-1"], "--workers"),
        (["tests.cli_apps:app", "--workers", "2", "--reload"], "--reload and --workers"),
        (["tests.cli_apps:app", "--bind", "127.0.0.1:http"], "--bind"),
        (["tests.cli_apps:app", "--h2-max-frame-size", "1000"], "--h2-max-frame-size must be between 16384"),
        (["tests.cli_apps:app", "--h2-max-concurrent-streams", "0"], "--h2-max-concurrent-streams"),
        (["tests.cli_apps:app", "--ws-max-size", "0"], "--ws-max-size must be at least 1; got 0"),
        (["tests.cli_apps:app", "--timeout-request-body", "-1"], "--timeout-request-body must be at least 0"),
        (["tests.cli_apps:app", "--timeout-lifespan-shutdown", "-1"], "--timeout-lifespan-shutdown"),
        (["tests.cli_apps:app", "--h11-max-incomplete-event-size", "10"], "--h11-max-incomplete-event-size"),
        (["tests.cli_apps:app", "--uds-permissions", "9"], "'9' is not an octal file mode such as 660."),
        (["tests.cli_apps:app", "--forwarded-allow-ips", "10.0.0.0/99"], "--forwarded-allow-ips: '10.0.0.0/99'"),
        (["tests.cli_apps:app", "--proxy-protocol", "--proxy-allow-from", "10.0.0.0/99"], "--proxy-allow-from: "),
        (
            ["tests.cli_apps:app", "--ws-per-message-deflate", "nope"],
            "Invalid value for '--ws-per-message-deflate': 'nope' is not a valid boolean.",
        ),
        (["tests.cli_apps:app", "--log-config", "no-such-file.json"], "--log-config no-such-file.json: no such file"),
        ([], "Missing argument 'APP'."),
    ],
)
def test_usage_errors_exit_2_as_click_says_them(args, message):
    """uvicorn's (click's) shape: the usage, a hint, and one line that says what is wrong."""
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[:3] == USAGE_LINES and len(lines) == 4, result.stderr
    assert lines[3].startswith("Error: ") and message in lines[3], result.stderr
    assert result.stdout == ""


def test_bad_environment_value_names_the_variable():
    result = run_cli("tests.cli_apps:app", env={"FASTSERVE_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--port' (from the environment variable FASTSERVE_PORT): "
        "'eighty' is not a valid integer."
    )


def test_port_in_use():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("tests.cli_apps:app", "--port", str(port), "--lifespan", "off")
    assert result.returncode == 3  # (uvicorn's)
    started, error = result.stderr.splitlines()
    assert re.fullmatch(r"INFO:     Started server process \[\d+\]", started)
    assert error == f"ERROR:    could not listen on 127.0.0.1:{port}: Address already in use"


def test_startup_failure_exits_3():
    result = run_cli("tests.cli_apps:failing_startup", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3
    assert "cannot reach the database" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_startup_failure_reported_and_raised_is_told_once(workers):
    """Starlette reports a lifespan failure with the traceback as its message, then raises it: one traceback."""
    result = run_cli("tests.cli_apps:failing_startup_and_raising", "--port", "0", "--workers", workers)
    assert result.returncode == 3
    assert result.stderr.count("Traceback (most recent call last)") == 1, result.stderr
    assert result.stderr.count("RuntimeError: cannot reach the database") == 1, result.stderr
    assert result.stderr.splitlines().count("ERROR:    Application startup failed. Exiting.") == 1, result.stderr


def parse(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict:
    for name in [name for name in os.environ if name.startswith(("FASTSERVE_", "UVICORN_"))]:
        monkeypatch.delenv(name)
    for name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return parse_args(["app:app", *argv])


def test_environment_precedence(monkeypatch):
    assert parse([], {}, monkeypatch)["port"] == 8000
    assert parse([], {"UVICORN_PORT": "7001"}, monkeypatch)["port"] == 7001
    assert parse([], {"UVICORN_PORT": "7001", "FASTSERVE_PORT": "7002"}, monkeypatch)["port"] == 7002
    assert parse(["--port", "7003"], {"FASTSERVE_PORT": "7002"}, monkeypatch)["port"] == 7003
    options = parse(
        [],
        {
            "UVICORN_ACCESS_LOG": "false",
            "FASTSERVE_HEADER": "x-a:1 x-b:2",
            "WEB_CONCURRENCY": "3",
            "FORWARDED_ALLOW_IPS": "10.0.0.1",
            "UVICORN_LIMIT_CONCURRENCY": "50",
            "FASTSERVE_HTTP": "h11",
        },
        monkeypatch,
    )
    assert options["access_log"] is False
    assert list(options["headers"]) == ["x-a:1", "x-b:2"]
    assert options["workers"] == 3 and options["forwarded_allow_ips"] == "10.0.0.1"
    assert options["limit_concurrency"] == 50 and options["http"] == "h11"
    options = parse(
        [],
        {
            "FASTSERVE_TIMEOUT_REQUEST_BODY": "7.5",
            "UVICORN_TIMEOUT_LIFESPAN_SHUTDOWN": "4",
            "FASTSERVE_H11_MAX_INCOMPLETE_EVENT_SIZE": "4096",
        },
        monkeypatch,
    )
    assert options["timeout_request_body"] == 7.5 and options["timeout_lifespan_shutdown"] == 4
    assert options["h11_max_incomplete_event_size"] == 4096
    assert parse(["--access-log"], {"UVICORN_ACCESS_LOG": "false"}, monkeypatch)["access_log"] is True


def test_uvicorn_environment_serves(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    process = Process("tests.cli_apps:app", env={"UVICORN_PORT": str(port), "UVICORN_HTTP": "h11"})
    try:
        assert process.url() == f"http://127.0.0.1:{port}"
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "hello"
    finally:
        process.proc.send_signal(signal.SIGINT)
    assert process.finish() == 0


@pytest.mark.parametrize(
    "options", [["--http", "httptools"], ["--http", "h11"], ["--workers", "2"]], ids=["httptools", "h11", "workers"]
)
def test_sigterm_lets_the_request_finish(options):
    """A 2 s request in flight at SIGTERM completes, then the process exits 0 (with a supervisor too)."""
    process = Process("tests.cli_apps:app", "--port", "0", *options)
    try:
        url = process.url()
        with httpx.stream("GET", url + "/stream?2", timeout=10) as response:
            chunks = response.iter_bytes()
            assert next(chunks) == b"started\n"
            process.proc.send_signal(signal.SIGTERM)
            rest = b"".join(chunks)
            assert rest == b"finished\n"
        assert process.finish(20) == 0
        process.wait_line("Application shutdown complete")
    finally:
        process.finish(1)


def test_second_sigint_forces_exit():
    process = Process("tests.cli_apps:app", "--port", "0", "--timeout-graceful-shutdown", "60")
    try:
        url = process.url()
        with httpx.stream("GET", url + "/stream?60") as response:
            assert next(response.iter_bytes()) == b"started\n"
            process.proc.send_signal(signal.SIGINT)
            process.wait_line("Shutting down")
            process.proc.send_signal(signal.SIGINT)
            assert process.finish(10) == 0
    finally:
        process.finish(1)


def test_uvicorn_log_config_keeps_working(tmp_path):
    log_file = tmp_path / "access.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": 'ACCESS %(client_addr)s "%(request_line)s" %(status_code)s',
            },
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
        },
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "access"},
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn.error": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    config_path = tmp_path / "log.json"
    config_path.write_text(json.dumps(config))
    process = Process("tests.cli_apps:app", "--port", "0", "--log-config", str(config_path))
    try:
        url = process.url()
        httpx.get(url + "/logged?x=1")
    finally:
        process.proc.send_signal(signal.SIGINT)
    assert process.finish() == 0
    assert re.search(r'ACCESS 127\.0\.0\.1:\d+ "GET /logged\?x=1 HTTP/1\.1" 200', log_file.read_text())


@pytest.mark.parametrize("suffix", [".yaml", ".ini"])
def test_log_config_formats(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    if suffix == ".yaml":
        path.write_text(
            "version: 1\ndisable_existing_loggers: false\n"
            "formatters: {plain: {'()': uvicorn.logging.DefaultFormatter, fmt: 'YAML %(message)s'}}\n"
            "handlers: {err: {class: logging.StreamHandler, formatter: plain, stream: 'ext://sys.stderr'}}\n"
            "loggers: {uvicorn.error: {handlers: [err], level: INFO, propagate: false}}\n"
        )
        marker = "YAML "
    else:
        path.write_text(
            "[loggers]\nkeys=root,err\n[handlers]\nkeys=err\n[formatters]\nkeys=plain\n"
            "[logger_root]\nhandlers=\n[logger_err]\nhandlers=err\nqualname=uvicorn.error\npropagate=0\nlevel=INFO\n"
            "[handler_err]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stderr,)\n"
            "[formatter_plain]\nclass=uvicorn.logging.DefaultFormatter\nformat=INI %(message)s\n"
        )
        marker = "INI "
    process = Process("tests.cli_apps:app", "--port", "0", "--log-config", str(path))
    try:
        process.wait_line(marker + r"Fastserve running on")
    finally:
        process.proc.send_signal(signal.SIGINT)
    assert process.finish() == 0


def test_main_returns_exit_codes():
    assert main(["--version"]) == 0
    assert main(["tests.cli_apps:app", "--port", "-1"]) == 2


def test_run_api_and_log_level(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    script = f"import fastserve; fastserve.run('tests.cli_apps:app', port={port}, log_level='warning')"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.05)
        assert response.text == "hello"
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "running on" not in stderr  # an INFO line, hidden at --log-level warning


def test_http2_and_reset_contextvars_flags(monkeypatch):
    assert parse([], {}, monkeypatch)["http2"] is True
    assert parse(["--no-http2"], {}, monkeypatch)["http2"] is False
    assert parse(["--http2"], {}, monkeypatch)["http2"] is True
    assert parse([], {"FASTSERVE_HTTP2": "false"}, monkeypatch)["http2"] is False
    assert parse(["--h2-engine", "h2"], {}, monkeypatch)["h2_engine"] == "h2"
    assert parse(["--h2-ping-interval", "5"], {}, monkeypatch)["h2_ping_interval"] == 5.0
    assert parse(["--h2-max-concurrent-streams", "7"], {}, monkeypatch)["h2_max_concurrent_streams"] == 7
    assert parse([], {}, monkeypatch)["reset_contextvars"] is False
    assert parse(["--reset-contextvars"], {}, monkeypatch)["reset_contextvars"] is True
    assert parse([], {"UVICORN_RESET_CONTEXTVARS": "true"}, monkeypatch)["reset_contextvars"] is True


def test_help_lists_every_option_by_topic_with_its_default_and_environment():
    import click

    from fastserve.cli import SECTIONS, Option, build_command

    command = build_command()
    context = click.Context(command)
    options = [param for param in command.params if isinstance(param, Option) and param.name != "version"]
    assert len(options) >= 70  # (all of them: uvicorn has 50)
    for option in options:
        _, text = option.get_help_record(context)
        flag = option.opts[0]
        assert f"env: FASTSERVE_{flag.lstrip('-').replace('-', '_').upper()}" in text, flag
        if option.declared_default is not None or option.default_text is not None:
            assert "[default: " in text, flag
    result = run_cli("--help", env={"COLUMNS": "120"})
    assert result.returncode == 0
    out = result.stdout
    headers = [line[:-1] for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert headers == [name for name in SECTIONS if name != "Other"] + ["Other"]
    for option in options:  # each under its own topic
        section_start = out.index(f"\n{option.section}:\n")
        next_starts = [out.index(f"\n{name}:\n") for name in SECTIONS if out.index(f"\n{name}:\n") > section_start]
        assert f"  {option.opts[0]}" in out[section_start : min(next_starts, default=len(out))], option.opts[0]
    # uvicorn's spellings: the same help words where the option is uvicorn's, and its variables.
    assert "Bind socket to this port. If 0, an available port will be picked." in out
    assert "UVICORN_TIMEOUT_KEEP_ALIVE" in out and "WEB_CONCURRENCY" in out


def test_build_warnings_name_what_runs_as_plain_python_and_the_fix(monkeypatch):
    import fastserve.protocols as protocols
    from fastserve.protocols.http2 import HTTP2Settings
    from fastserve.protocols.http2_h2 import H2Engine

    monkeypatch.delenv("FASTSERVE_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(protocols, "compiled_http1", None)
    monkeypatch.setattr(HTTP2Settings, "engine_class", H2Engine)
    warnings = protocols.build_warnings(http2=True, h2_engine="auto")
    assert [warning.split(":")[0] for warning in warnings] == [
        "HTTP/1.1 is served by the pure-Python protocol (several times slower)",
        "HTTP/2 is served by the h2 engine (pure Python, about 10x slower)",
    ]
    assert "apt-get install pkg-config libnghttp2-dev" in warnings[1]
    assert protocols.build_warnings(http2=True, h2_engine="h2")[1:] == []  # chosen knowingly: no warning
    assert protocols.build_warnings(http2=False, h2_engine="auto")[1:] == []
    monkeypatch.setenv("FASTSERVE_NO_EXTENSIONS", "1")
    assert protocols.build_warnings(http2=True, h2_engine="auto") == []  # asked for

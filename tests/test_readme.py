"""The README's exit-code table, row by row, against the installed ``fastserve`` command."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests import processes
from tests.processes import ROOT, Finished

FASTSERVE = Path(sys.executable).with_name("fastserve")
MARKER = "<!-- exit-codes:"

# The application a person got wrong, in the directory the examples run in.
MAIN = """
settings = {}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def create_app():
    raise RuntimeError("DATABASE_URL is not set")


async def failing(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "cannot reach the database"})
"""


def table_rows() -> list[tuple[str, str, int, str]]:
    """(mistake, command, exit code, the line) of each row of the README's exit-code table."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(MARKER))
    rows = []
    for line in lines[start + 3 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        mistake, example, code, printed = cells[:4]
        rows.append((mistake, example.strip("`"), int(code), re.match(r"`([^`]*)`", printed).group(1)))
    return rows


ROWS = table_rows()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mistakes")
    (folder / "main.py").write_text(MAIN)
    (folder / "broken.py").write_text("import missing_dependency\napp = None\n")
    cert = trustme.CA().issue_cert("127.0.0.1")
    (folder / "key.pem").write_bytes(cert.private_key_pem.bytes())
    return folder


@pytest.mark.skipif(not FASTSERVE.exists(), reason="the fastserve command is not installed")
@pytest.mark.tracebacks("Error loading ASGI app")  # (the rows whose app raises: its traceback, once, is the point)
@pytest.mark.parametrize(("mistake", "example", "code", "printed"), ROWS, ids=[row[0] for row in ROWS])
def test_exit_code_table(workdir: Path, mistake: str, example: str, code: int, printed: str) -> None:
    args = shlex.split(example)[1:]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        if "8000" in example:  # "the port is taken": by this socket
            port = str(taken.getsockname()[1])
            args = [port if arg == "8000" else arg for arg in args]
            printed = printed.replace("8000", port)
        elif "--port" not in args:
            args += ["--port", "0"]  # (a mistake not caught would serve: on a free port, and the test times out)
        result = subprocess.run(
            [str(FASTSERVE), *args], cwd=workdir, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    processes.started.append(Finished(result))
    assert result.returncode == code, result.stderr
    assert printed in result.stderr.splitlines(), result.stderr
    assert "Traceback" not in result.stderr or code == 1, result.stderr  # (a traceback only where the app raised)
    assert result.stderr.count("Traceback (most recent call last)") <= 1, result.stderr  # (and once)

"""fastserve run as a separate process, for the tests of the command line and the supervisor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# Every server process a test started, and what it printed: checked when the test ends (tests/log_check.py).
started: list[Process | Finished] = []


class Process:
    """``python -m fastserve ...`` (or another command) with its stderr and stdout collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, command: list[str] | None = None) -> None:
        self.lines: list[str] = []  # stderr, where the server's own lines go
        self.stdout_lines: list[str] = []  # stdout: the access log
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "fastserve"]), *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.readers = [
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.stdout_lines), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        started.append(self)

    def _collect(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self.changed:
                lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            lines.append("<eof>")
            self.changed.notify_all()

    def wait_stdout_line(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        return self._wait(self.stdout_lines, pattern, timeout)

    def check_output(self, check: Any) -> None:
        """Hand what the process printed to the log check (stopping it first if the test did not)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for reader in self.readers:
            reader.join(10)
        check.output("stderr of " + " ".join(map(str, self.proc.args[1:])), self.lines[:-1])
        check.output("stdout of " + " ".join(map(str, self.proc.args[1:])), self.stdout_lines[:-1])

    def wait_line(self, pattern: str, timeout: float = 10, joined: bool = False) -> re.Match[str]:
        """The first stderr line matching ``pattern`` (``joined``: the first match in all the lines so far)."""
        return self._wait(self.lines, pattern, timeout, joined)

    def _wait(self, lines: list[str], pattern: str, timeout: float, joined: bool = False) -> re.Match[str]:
        with self.changed:
            seen = 0
            deadline = time.monotonic() + timeout
            while True:
                for line in ["\n".join(lines)] if joined else lines[seen:]:
                    match = re.search(pattern, line)
                    if match:
                        return match
                seen = len(lines)
                if "<eof>" in lines or not self.changed.wait(deadline - time.monotonic()):
                    raise AssertionError(f"no line matching {pattern!r} in {lines}")

    def url(self) -> str:
        return self.wait_line(r"running on (http://\S+)").group(1)

    def finish(self, timeout: float = 10) -> int:
        """The exit code, once the process has ended and all it printed has been read."""
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for reader in self.readers:
            reader.join(5)
        return code


class Finished:
    """A process run to its end by ``run_cli``: its output, for the log check."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result

    def check_output(self, check: Any) -> None:
        name = " ".join(map(str, self.result.args[1:]))
        check.output("stderr of " + name, self.result.stderr.splitlines())
        check.output("stdout of " + name, self.result.stdout.splitlines())


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "fastserve", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=20,
    )
    started.append(Finished(result))
    return result

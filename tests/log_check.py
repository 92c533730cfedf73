"""What a server prints is checked in every test: no logging error, no traceback the test did not expect.

In-process servers: every record of the server's loggers (and asyncio's) is
rendered by the formatters of the default log configuration, as a user's
terminal would; a record that cannot be rendered, a handler's
``--- Logging error ---``, or a record with a traceback fails the test.
Subprocess servers (``tests.processes``): their stdout and stderr are read the
same way. A test that makes a traceback on purpose names it:
``@pytest.mark.tracebacks("Exception in ASGI application")`` allows records
(or, in a process's output, the log line before a traceback) matching one of
the patterns.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from fastserve.logging import LOGGING_CONFIG, AccessFormatter, DefaultFormatter

WATCHED = ("fastserve", "uvicorn", "asyncio", "concurrent")
LOG_LINE_START = re.compile(r"^(TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL):")


class LogCheck:
    """The problems seen during one test."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = [re.compile(pattern) for pattern in allowed]
        self.problems: list[str] = []
        self.lock = threading.Lock()
        formatters = LOGGING_CONFIG["formatters"]
        self.default = DefaultFormatter(fmt=formatters["default"]["fmt"], use_colors=False)
        self.access = AccessFormatter(fmt=formatters["access"]["fmt"], use_colors=False)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def is_allowed(self, message: str) -> bool:
        return any(pattern.search(message) for pattern in self.allowed)

    def record(self, record: logging.LogRecord) -> None:
        """A record a watched logger handles: it must render, and carry no unexpected traceback."""
        if not record.name.startswith(WATCHED):
            return
        formatter = self.access if record.name == "fastserve.access" else self.default
        try:
            line = formatter.format(record)
        except Exception as exc:  # what the default configuration would print as "--- Logging error ---"
            self.problem(
                f"record of {record.name} cannot be rendered: {exc!r} (msg={record.msg!r}, args={record.args!r})"
            )
            return
        if record.exc_info and not self.is_allowed(record.getMessage()):
            self.problem(f"unexpected traceback in the log:\n{line}")

    def output(self, name: str, lines: list[str]) -> None:
        """The printed output of a server process."""
        for index, line in enumerate(lines):
            if "--- Logging error ---" in line:
                self.problem(f"{name} printed a logging error:\n" + "\n".join(lines[index : index + 30]))
            elif line.startswith("Traceback (most recent call last):"):
                header = next((earlier for earlier in reversed(lines[:index]) if LOG_LINE_START.match(earlier)), "")
                if not self.is_allowed(header):
                    self.problem(f"{name} printed an unexpected traceback after {header!r}:\n" + "\n".join(lines))

    def report(self) -> str | None:
        if not self.problems:
            return None
        return "What the server printed is wrong:\n\n" + "\n\n".join(self.problems)


_current: LogCheck | None = None


def current() -> LogCheck | None:
    return _current


def start(allowed: Iterable[str], monkeypatch: Any) -> LogCheck:
    """Watch every record and every handler error until the test ends (monkeypatch undoes it)."""
    global _current
    check = _current = LogCheck(allowed)
    handle = logging.Logger.handle

    def checked_handle(self: logging.Logger, record: logging.LogRecord) -> Any:
        check.record(record)
        return handle(self, record)

    def handle_error(self: logging.Handler, record: logging.LogRecord) -> None:
        check.problem(f"--- Logging error --- in {type(self).__name__} for {record.msg!r} {record.args!r}")

    monkeypatch.setattr(logging.Logger, "handle", checked_handle)
    monkeypatch.setattr(logging.Handler, "handleError", handle_error)
    # INFO records are made (and so rendered) even without a log configuration: the access lines among them.
    server_logger = logging.getLogger("fastserve")
    if server_logger.level == logging.NOTSET or server_logger.level > logging.INFO:
        monkeypatch.setattr(server_logger, "level", logging.INFO)
        logging.Logger.manager._clear_cache()
    return check


def stop() -> None:
    global _current
    _current = None
    logging.Logger.manager._clear_cache()

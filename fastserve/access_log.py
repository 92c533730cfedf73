"""Access lines in gunicorn's format language (``--access-log-format``) or as JSON (``--access-log-json``).

A format is compiled once: the atoms it names are found when the server
starts, and each request computes only those. Values that come from the
client (the request line, headers) are escaped so that a log line stays one
line of printable text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from fastserve.asgi import escape_for_log

# gunicorn's atoms: %(h)s, %(r)s ... and %({name}i)s (request header), %({name}o)s (response header),
# %({name}e)s (environment variable).
access_logger = logging.getLogger("fastserve.access")

_ATOM = re.compile(r"%\((\{[^}]*\}[ioe]|[a-zA-Z]+)\)s")


class AccessLogFormatError(ValueError):
    pass


def request_target(scope: dict[str, Any]) -> str:
    """The request's path and query, as they came, made safe for a log line."""
    target = scope["raw_path"]
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    return escape_for_log(target)


# What the access log knows of a request the server refused before its head
# was parsed (a 400, 408, 414, 431...): the connection's scope template and this.
UNPARSED_SCOPE: dict[str, Any] = {
    "unparsed": True,
    "method": "-",
    "path": "-",
    "raw_path": b"-",
    "query_string": b"",
    "http_version": "-",
    "headers": [],
}


def request_line(scope: dict[str, Any], method: str | None = None) -> str:
    """The request line as the access log shows it ("-" when it was never parsed)."""
    if "unparsed" in scope:
        return "-"
    return f"{method or scope['method']} {request_target(scope)} HTTP/{scope['http_version']}"


class RequestRecord:
    """What one finished request tells the access log."""

    __slots__ = ("client", "scope", "status", "response_headers", "bytes_sent", "duration")

    def __init__(
        self,
        client: str,
        scope: dict[str, Any],
        status: int,
        response_headers: Any,
        bytes_sent: int,
        duration: float,
    ) -> None:
        self.client = client
        self.scope = scope
        self.status = status
        self.response_headers = response_headers
        self.bytes_sent = bytes_sent
        self.duration = duration

    @property
    def method(self) -> str:
        """The request's method (a WebSocket handshake's is GET)."""
        scope = self.scope
        return scope["method"] if "method" in scope else "GET"

    def request_header(self, name: bytes) -> str:
        for key, value in self.scope["headers"]:
            if key == name:
                return escape_for_log(value)
        return "-"

    def response_header(self, name: bytes) -> str:
        for item in self.response_headers or ():
            key, value = item
            if isinstance(key, bytes) and key.lower() == name:
                return escape_for_log(value)
        return "-"


# Every access record, on every protocol, is logged with uvicorn's arguments:
# (client_addr, method, full_path, http_version, status_code). A formatter
# written for uvicorn's records reads ours, a plain "%(message)s" shows the
# line, and AccessFormatter adds the status's reason phrase.
ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d'
# A request refused before its head was parsed: method "-", the other two empty.
UNPARSED_MESSAGE = '%s - "%s%s%s" %d'


def log_exchange(
    conn: Any, scope: dict[str, Any], status: int, response_headers: Any, sent: int, started: float
) -> None:
    """log_access for a request of ``conn`` (HTTP/1.1 or an HTTP/2 stream's connection).

    The client named is the one a trusted proxy named, else the connection's peer.
    """
    client = scope["client"]
    if client is conn.client or client is None:
        label = conn.client_label
    else:
        label = f"{client[0]}:{client[1]}"
    log_access(conn.state.access_format, label, scope, status, response_headers, sent, started)


def log_access(
    access_format: Any, label: str, scope: dict[str, Any], status: int, response_headers: Any, sent: int, started: float
) -> None:
    """The one access record of an answered request, WebSocket handshake or refusal, on every protocol.

    ``scope`` is the request's (a WebSocket's shows as method "WebSocket"), or
    the connection's scope merged with UNPARSED_SCOPE for what the server
    refused before a request head was parsed. With --access-log-format or
    --access-log-json the line is rendered whole; the fields of the default
    line still go along (``extra``) for log configs that name them.
    """
    if "unparsed" in scope:
        message, method, target, version = UNPARSED_MESSAGE, "-", "", ""
    else:
        message, target, version = ACCESS_MESSAGE, request_target(scope), scope["http_version"]
        method = "WebSocket" if scope["type"] == "websocket" else scope["method"]
    if access_format is None:
        access_logger.info(message, label, method, target, version, status)
        return
    record = RequestRecord(label, scope, status, response_headers, sent, perf_counter() - started)
    access_logger.info(
        access_format.line(record),
        extra={"client_addr": label, "request_line": request_line(scope, method), "status_code": status},
    )


def _clf_time(record: RequestRecord) -> str:
    return datetime.now(UTC).astimezone().strftime("[%d/%b/%Y:%H:%M:%S %z]")


ATOMS: dict[str, Callable[[RequestRecord], str]] = {
    "h": lambda r: r.client.rpartition(":")[0] or r.client or "-",
    "l": lambda r: "-",
    "u": lambda r: "-",
    "t": _clf_time,
    "r": lambda r: request_line(r.scope, r.method),
    "m": lambda r: r.method,
    "U": lambda r: escape_for_log(r.scope["raw_path"]),
    "q": lambda r: escape_for_log(r.scope["query_string"]),
    "H": lambda r: f"HTTP/{r.scope['http_version']}",
    "s": lambda r: str(r.status),
    "B": lambda r: str(r.bytes_sent),
    "b": lambda r: str(r.bytes_sent) if r.bytes_sent else "-",
    "f": lambda r: r.request_header(b"referer"),
    "a": lambda r: r.request_header(b"user-agent"),
    "T": lambda r: str(int(r.duration)),
    "M": lambda r: str(int(r.duration * 1_000)),
    "D": lambda r: str(int(r.duration * 1_000_000)),
    "L": lambda r: f"{r.duration:.6f}",
    "p": lambda r: f"<{os.getpid()}>",
}


class AccessLogFormat:
    """A gunicorn access-log format, compiled into the atoms it uses."""

    def __init__(self, fmt: str) -> None:
        # Literal text and atom renderers, in order ("%%" is a literal "%", as in gunicorn).
        self.parts: list[str | Callable[[RequestRecord], str]] = []
        position = 0
        for match in _ATOM.finditer(fmt):
            self.parts.append(fmt[position : match.start()].replace("%%", "%"))
            self.parts.append(self._compile(match.group(1)))
            position = match.end()
        self.parts.append(fmt[position:].replace("%%", "%"))
        self.parts = [part for part in self.parts if part != ""]

    @staticmethod
    def _compile(atom: str) -> Callable[[RequestRecord], str]:
        if atom.startswith("{"):
            name, kind = atom[1:-2], atom[-1]
            if kind == "i":
                key = name.lower().encode("latin-1")
                return lambda r: r.request_header(key)
            if kind == "o":
                key = name.lower().encode("latin-1")
                return lambda r: r.response_header(key)
            return lambda r: os.environ.get(name, "-")
        if atom not in ATOMS:
            raise AccessLogFormatError(f"--access-log-format: unknown atom %({atom})s")
        return ATOMS[atom]

    def line(self, record: RequestRecord) -> str:
        return "".join(part if isinstance(part, str) else part(record) for part in self.parts)


class JSONAccessLog:
    """One JSON object per request."""

    def line(self, record: RequestRecord) -> str:
        scope = record.scope
        return json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "client": record.client or None,
                "method": record.method,
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "http_version": scope["http_version"],
                "scheme": scope["scheme"],
                "status": record.status,
                "bytes": record.bytes_sent,
                "duration_ms": round(record.duration * 1000, 3),
                "user_agent": _none_if_dash(record.request_header(b"user-agent")),
                "referer": _none_if_dash(record.request_header(b"referer")),
                "pid": os.getpid(),
            },
            ensure_ascii=True,
        )


def _none_if_dash(value: str) -> str | None:
    return None if value == "-" else value


def access_log_format(fmt: str | None, as_json: bool) -> AccessLogFormat | JSONAccessLog | None:
    """The compiled access-line renderer the options ask for, or None for the default line."""
    if as_json:
        return JSONAccessLog()
    if fmt:
        return AccessLogFormat(fmt)
    return None

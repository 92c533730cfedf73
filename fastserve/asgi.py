"""What every protocol shares: scope building, message validation, the ASGI 2 adapter.

Nothing here knows about sockets or parsers; the protocols call in with bytes
they already parsed and get back plain Python values.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from fastserve.errors import ASGIMessageError as ASGIMessageError
from fastserve.errors import ClientDisconnected as ClientDisconnected

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def asgi_version() -> dict[str, str]:
    """The scope's "asgi" entry: a new dict for every scope, as apps may write to it."""
    return {"version": "3.0", "spec_version": "2.4"}


# RFC 9110 token characters for header names; values may hold VCHAR, obs-text,
# space and tab, never CR, LF, NUL or other control bytes (response splitting).
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEADER_VALUE_FORBIDDEN = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_NON_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


def build_scope_template(
    scheme: str,
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
    root_path: str,
) -> dict[str, Any]:
    """The immutable part of an HTTP scope, the same for every request on a connection.

    Each request copies it and adds its own values, and its own mutable ones
    ("asgi", "extensions", "state"): apps may write to those.
    """
    return {
        "type": "http",
        "http_version": "1.1",
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": root_path,
    }


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into (raw_path, query_string); fragments are dropped."""
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    if not target.startswith(b"/") and target != b"*":
        # absolute-form (a request meant for a proxy): keep only the path part.
        scheme_end = target.find(b"://")
        if scheme_end >= 0:
            path_start = target.find(b"/", scheme_end + 3)
            query_start = target.find(b"?", scheme_end + 3)
            if path_start < 0 or (0 <= query_start < path_start):
                target = b"/" + (target[query_start:] if query_start >= 0 else b"")
            else:
                target = target[path_start:]
    raw_path, _, query_string = target.partition(b"?")
    return raw_path, query_string


def decode_path(raw_path: bytes) -> str:
    """The percent-decoded, UTF-8 decoded path the scope carries."""
    if b"%" in raw_path:
        raw_path = unquote_to_bytes(raw_path)
    return raw_path.decode("utf-8", "replace")


def validate_response_start(message: Message) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Check an ``http.response.start`` message; return its status and headers."""
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise ASGIMessageError(f"Invalid response status {status!r}: expected an int in 200..599")
    if message.get("trailers"):
        raise ASGIMessageError("Response trailers are not supported")
    headers = list(message.get("headers", ()))
    for item in headers:
        validate_header(item)
    return status, headers


def validate_header(item: Iterable[Any]) -> None:
    try:
        name, value = item
    except (TypeError, ValueError):
        raise ASGIMessageError(f"Invalid response header {item!r}: expected a [name, value] pair") from None
    if type(name) is not bytes or type(value) is not bytes:
        raise ASGIMessageError(f"Invalid response header {item!r}: name and value must be bytes")
    if _HEADER_NAME.match(name) is None:
        raise ASGIMessageError(f"Invalid response header name {name!r}")
    if _HEADER_VALUE_FORBIDDEN.search(value) is not None:
        raise ASGIMessageError(f"Invalid response header value for {name!r}: control characters")


def validate_response_body(message: Message) -> tuple[bytes, bool]:
    body = message.get("body", b"")
    if type(body) is not bytes:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise ASGIMessageError(f"Invalid response body {type(body).__name__}: expected bytes")
        body = bytes(body)
    return body, bool(message.get("more_body", False))


def escape_for_log(raw: bytes) -> str:
    """Render untrusted bytes for a log line: no terminal escapes, no line breaks."""
    return _NON_PRINTABLE.sub(lambda match: b"\\x%02x" % match.group()[0], raw).decode("ascii")


class ASGI2Adapter:
    """Runs an ASGI 2 application (``app(scope)`` returning ``instance(receive, send)``)."""

    def __init__(self, app: Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)

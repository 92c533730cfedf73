"""What every protocol shares: scope building, message validation, the ASGI 2 adapter.

Nothing here knows about sockets or parsers; the protocols call in with bytes
they already parsed and get back plain Python values.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from fastserve.errors import ASGIMessageError as ASGIMessageError
from fastserve.errors import ClientDisconnected as ClientDisconnected

_error_logger = logging.getLogger("fastserve.error")

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
# Checked with bytes.translate: deleting the allowed (or forbidden) bytes is one
# C loop, far cheaper than a regular expression on the per-response path.
HEADER_NAME_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HEADER_VALUE_FORBIDDEN = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
_NON_PRINTABLE = re.compile(rb"[^\x20-\x7e]")

# Header names already validated as tokens, mapped to their lowercase form.
# Apps send, and clients ask with, the same few names over and over, so the
# protocol looks a name up here and validates or lowercases only what it has not
# seen. Bounded: when full it starts over, so hostile or generated names cannot
# grow it, nor crowd out the names in use for good.
HEADER_KEYS: dict[bytes, bytes] = {}
HEADER_KEYS_MAX = 1024


def build_scope_template(root_path: str) -> dict[str, Any]:
    """An HTTP scope with the values that are the same for every request a server answers.

    Each request copies it and fills in its connection's values ("scheme",
    "server", "client") and its own, including the mutable ones ("asgi",
    "extensions", "state"): apps may write to those. Every key is already
    there, so filling in replaces values and never grows the copy.
    """
    return {
        "type": "http",
        "asgi": None,
        "http_version": "1.1",
        "scheme": None,
        "server": None,
        "client": None,
        "root_path": root_path,
        "method": None,
        "path": None,
        "raw_path": None,
        "query_string": None,
        "headers": None,
        "extensions": None,
        "state": None,
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


def validate_status(status: Any) -> None:
    if type(status) is not int or not 200 <= status <= 599:
        raise ASGIMessageError(f"Invalid response status {status!r}: expected an int in 200..599")


def header_key(name: Any) -> bytes:
    """Validate a response header name; return its lowercase form (remembered in HEADER_KEYS)."""
    if type(name) is not bytes:
        raise ASGIMessageError(f"Invalid response header name {name!r}: name and value must be bytes")
    if not is_token(name):
        raise ASGIMessageError(f"Invalid response header name {name!r}")
    return remember_header_key(name)


def request_header_key(name: bytes) -> bytes:
    """A request header name in lowercase (remembered in HEADER_KEYS when it is a token)."""
    return remember_header_key(name) if is_token(name) else name.lower()


def is_token(name: bytes) -> bool:
    return bool(name) and not name.translate(None, HEADER_NAME_CHARS)


def remember_header_key(name: bytes) -> bytes:
    key = name.lower()
    if len(HEADER_KEYS) >= HEADER_KEYS_MAX:
        HEADER_KEYS.clear()
    HEADER_KEYS[name] = key
    return key


def check_header_value(name: bytes, value: Any) -> None:
    if type(value) is not bytes:
        raise ASGIMessageError(f"Invalid response header value for {name!r}: name and value must be bytes")
    if len(value.translate(None, HEADER_VALUE_FORBIDDEN)) != len(value):
        raise ASGIMessageError(f"Invalid response header value for {name!r}: control characters")


def header_pair(item: Any) -> tuple[Any, Any]:
    try:
        name, value = item
    except (TypeError, ValueError):
        raise ASGIMessageError(f"Invalid response header {item!r}: expected a [name, value] pair") from None
    return name, value


def validate_header(item: Iterable[Any]) -> None:
    """Check one response header."""
    name, value = header_pair(item)
    header_key(name)
    check_header_value(name, value)


# Fields a sender must not put in trailers (RFC 9110 6.5.1): framing, routing,
# request modifiers, authentication, response control, and what a recipient
# needs before the body (content type and coding, cookies).
FORBIDDEN_TRAILERS = frozenset(
    (
        b"age authorization cache-control connection content-encoding content-length content-range content-type "
        b"date expect expires host keep-alive location max-forwards pragma proxy-authenticate proxy-authorization "
        b"proxy-connection range retry-after set-cookie te trailer transfer-encoding upgrade vary www-authenticate"
    ).split()
)


def check_trailer(item: Any) -> tuple[bytes, bytes]:
    """One checked trailer field of ``http.response.trailers``: its lowercase name and its value."""
    name, value = header_pair(item)
    key = header_key(name)
    if key in FORBIDDEN_TRAILERS:
        raise ASGIMessageError(f"{name!r} cannot be a trailer field")
    check_header_value(name, value)
    return key, value


def trailer_line(item: Any) -> bytes:
    """One checked trailer field of ``http.response.trailers``, encoded for HTTP/1.1."""
    check_trailer(item)
    name, value = item
    return b"".join((name, b": ", value, b"\r\n"))


def early_hint_line(link: Any) -> bytes:
    """One checked Link field of ``http.response.early_hint``, encoded."""
    check_header_value(b"link", link)
    return b"".join((b"link: ", link, b"\r\n"))


def body_bytes(body: Any) -> bytes:
    """The bytes of a response body that is not a bytes object (bytearray, memoryview)."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ASGIMessageError(f"Invalid response body {type(body).__name__}: expected bytes")
    return bytes(body)


def escape_for_log(raw: bytes) -> str:
    """Render untrusted bytes for a log line: no terminal escapes, no line breaks."""
    return _NON_PRINTABLE.sub(lambda match: b"\\x%02x" % match.group()[0], raw).decode("ascii")


# The repr of bytes or a bytearray inside a library's message (h11: "illegal request line: bytearray(b'...')").
_QUOTED_BYTES = r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"'
_BYTES_REPR = re.compile(rf"bytearray\(({_QUOTED_BYTES})\)|({_QUOTED_BYTES})")


def readable_reason(message: str) -> str:
    """A parser's message with the bytes it quotes shown as escaped text: ``illegal request line: "GARBAGE"``."""

    def as_text(match: re.Match[str]) -> str:
        return '"' + escape_for_log(ast.literal_eval(match.group(1) or match.group(2))) + '"'

    return _BYTES_REPR.sub(as_text, message)


class ASGI2Adapter:
    """Runs an ASGI 2 application (``app(scope)`` returning ``instance(receive, send)``)."""

    def __init__(self, app: Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def log_app_failure(exc: BaseException, client_gone: bool, path: str) -> None:
    """How an app's call ended in an exception, told the log the same way on every protocol.

    Cancelled: graceful shutdown ran out (quiet if the client had gone). The
    ClientDisconnected that ``send()`` raises once the client has gone (or an
    exception the app raised while handling it, as Starlette's
    WebSocketDisconnect), or any OSError after the client went away, is
    expected: a closed browser tab is not an error. Anything else is the app's
    bug, with its traceback.
    """
    if isinstance(exc, asyncio.CancelledError):
        if not client_gone:
            _error_logger.warning("Request cancelled at shutdown: %s", path)
    elif (client_gone and isinstance(exc, OSError)) or _from_disconnect(exc):
        _error_logger.debug("Client went away during the request: %r", exc)
    else:
        _error_logger.error("Exception in ASGI application", exc_info=exc)


def _from_disconnect(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a ClientDisconnected, or was raised from or while handling one."""
    for _ in range(8):  # (a chain that long is not a framework wrapping send())
        if exc is None:
            return False
        if isinstance(exc, ClientDisconnected):
            return True
        exc = exc.__cause__ or exc.__context__
    return False

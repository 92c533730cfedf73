"""The server's refusals over HTTP/1.x: what a parser's stop means, and the answer the server writes itself.

HTTP/1.1 (``http1.HTTP1Protocol.on_parse_error``) classifies every parsing
stop here: a protocol switch, a full pipeline, a method llhttp does not know
(a request for h11, see ``http1_replay``), the client's error (its status),
or a fault of ours (500 and a traceback). The WebSocket handshake's refusals
and HTTP/1.1's share the answer (``error_response``).

llhttp's stops are recognised by httptools' exception classes. Two have no
class of their own (a method llhttp knows only for RTSP, and an HTTP version it
does not speak) and are told by llhttp's reason, which is learnt once, at
import, by making httptools stop on such a request: a reworded llhttp reason
changes what is learnt, not what it means.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import h11

from fastserve.errors import PipelineFull, ProtocolSwitch, RequestError

try:
    import httptools
except ImportError:  # (h11 alone serves HTTP/1.1)
    httptools = None


class _Silent:
    """A parser protocol without callbacks: enough to make llhttp stop on a request line."""


def llhttp_stop(request: bytes) -> tuple[type, tuple] | None:
    """(exception class, args) httptools raises on ``request``; None without httptools or a stop."""
    if httptools is None:
        return None
    try:
        httptools.HttpRequestParser(_Silent()).feed_data(request)
    except httptools.HttpParserError as exc:
        return type(exc), exc.args
    return None


if httptools is not None:
    UPGRADE_STOP: type | None = httptools.HttpParserUpgrade
    LLHTTP_ERRORS: tuple[type, ...] = (httptools.HttpParserError, httptools.HttpParserUpgrade)
    METHOD_REFUSED: type | None = httptools.HttpParserInvalidMethodError
else:
    UPGRADE_STOP = METHOD_REFUSED = None
    LLHTTP_ERRORS = ()
# A method llhttp knows only for another protocol ("ANNOUNCE" is RTSP's) on an HTTP request line.
OTHER_PROTOCOLS_METHOD = llhttp_stop(b"ANNOUNCE / HTTP/1.1\r\n")
# A version llhttp reads the digits of but does not speak: 505, as check_head answers 2.0 and 3.0.
UNSUPPORTED_VERSION = llhttp_stop(b"GET / HTTP/1.2\r\n")


def stop_of(exc: BaseException) -> tuple[type, tuple]:
    return type(exc), exc.args


def refused_method(exc: BaseException) -> bool:
    """Whether llhttp stopped at a method it does not know (a request for h11 to parse)."""
    return type(exc) is METHOD_REFUSED or stop_of(exc) == OTHER_PROTOCOLS_METHOD


def request_error(exc: BaseException) -> RequestError | None:
    """The RequestError behind a parser error (httptools wraps what a callback raises), or None."""
    for candidate in (exc, exc.__context__, exc.__cause__):
        if isinstance(candidate, RequestError):
            return candidate
    return None


def error_status(exc: BaseException) -> int:
    """The status code for a parser error (ours, httptools' or the h11 adapter's)."""
    error = request_error(exc)
    if error is not None:
        return error.status
    if stop_of(exc) == UNSUPPORTED_VERSION:
        return 505
    return 400


def switch_rest(exc: BaseException, data: Any) -> bytes | None:
    """The bytes after a request that asks to switch protocols, if ``exc`` is the parser stopping there; else None.

    llhttp stops with HttpParserUpgrade and the offset in ``data`` of what
    follows; the h11 adapter with ProtocolSwitch, which carries those bytes.
    """
    if isinstance(exc, ProtocolSwitch):
        return exc.rest
    if type(exc) is UPGRADE_STOP:
        return b"" if data is None else bytes(data[exc.args[0] :])
    return None


def unexpected_error(exc: BaseException) -> BaseException | None:
    """The exception behind a parsing failure when it is a fault of ours, not the client's; else None.

    httptools reports an exception raised in a callback as its own
    HttpParserCallbackError, with the callback's exception as the context.
    """
    if isinstance(exc, (RequestError, h11.RemoteProtocolError)):
        return None
    if isinstance(exc, LLHTTP_ERRORS):
        context = exc.__context__
        if context is None or isinstance(context, RequestError):
            return None
        return context
    return exc


def pipeline_full(exc: BaseException) -> PipelineFull | None:
    """The PipelineFull behind a parsing stop (raised directly, or through httptools), or None."""
    if type(exc) is PipelineFull:
        return exc
    context = exc.__context__
    if type(context) is PipelineFull:
        return context
    return None


def error_response(status: int, default_headers: bytes, extra_lines: bytes = b"", with_body: bool = True) -> bytes:
    """A short plain-text answer the server writes itself (then it closes the connection).

    Its body is the status phrase (see error_body_size); a HEAD request's answer has none.
    """
    phrase = error_body(status)
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, phrase),
            default_headers,
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(phrase),
            extra_lines,
            b"connection: close\r\n\r\n",
            phrase if with_body else b"",
        )
    )


def error_body(status: int) -> bytes:
    """The body of an error the server answers itself: the status phrase."""
    return HTTPStatus(status).phrase.encode("ascii")


def error_body_size(status: int) -> int:
    return len(HTTPStatus(status).phrase)

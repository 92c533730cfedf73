"""``fastserve APP``: argv and the environment turned into a Config.

Flags keep uvicorn's names and meanings. Each flag also reads
``FASTSERVE_<FLAG>`` and then ``UVICORN_<FLAG>`` from the environment (plus
uvicorn's ``WEB_CONCURRENCY`` and ``FORWARDED_ALLOW_IPS``); the command line wins.
"""

from __future__ import annotations

import argparse
import os
import platform
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from fastserve import __version__
from fastserve.config import (
    H2_ENGINE_CHOICES,
    HTTP_CHOICES,
    INTERFACE_CHOICES,
    LIFESPAN_CHOICES,
    LOOP_CHOICES,
    WS_CHOICES,
    resolve_loop,
)
from fastserve.logging import LOG_LEVELS
from fastserve.main import serve_app
from fastserve.proxy import FORWARDED_STYLES

ENV_PREFIXES = ("FASTSERVE_", "UVICORN_")
EXTRA_ENV = {"workers": "WEB_CONCURRENCY", "forwarded_allow_ips": "FORWARDED_ALLOW_IPS"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _octal(text: str) -> int:
    return int(text, 8)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastserve", description="A fast ASGI server.", allow_abbrev=False)
    add = parser.add_argument
    switch = argparse.BooleanOptionalAction
    add("app", nargs="?", help="the application, as <module>:<attribute>")
    add("--version", action="store_true", help="print the version and what is in use, then exit")
    add("--host", default="127.0.0.1", help="bind to this address (default 127.0.0.1)")
    add("--port", type=int, default=8000, help="bind to this port; 0 picks a free one (default 8000)")
    add("--uds", help="bind to this Unix domain socket")
    add("--fd", type=int, help="serve on this already-open socket file descriptor")
    add("--uds-permissions", type=_octal, default=0o666, help="mode of the --uds socket file, in octal (default 666)")
    add(
        "--bind",
        action="append",
        help="listen here: HOST:PORT, [V6]:PORT, unix:PATH or fd://N (repeatable; replaces --host/--port)",
    )
    add("--reload", action="store_true", help="restart the worker when files change (needs watchfiles)")
    add("--reload-dir", dest="reload_dirs", action="append", help="directory to watch (with --reload)")
    add("--reload-include", dest="reload_includes", action="append", help="glob to watch (with --reload)")
    add("--reload-exclude", dest="reload_excludes", action="append", help="glob to ignore (with --reload)")
    add("--reload-delay", type=float, default=0.25, help="seconds between reload checks")
    add("--workers", type=int, help="worker processes (default $WEB_CONCURRENCY or 1)")
    add("--reuse-port", action="store_true", help="each worker binds its own SO_REUSEPORT listener")
    add("--workers-max-rss", type=float, help="replace a worker whose resident memory exceeds this many MiB")
    add("--workers-lifetime", type=float, help="replace each worker after about this many seconds")
    add("--loop", choices=LOOP_CHOICES, default="auto", help="event loop (default: uvloop when installed)")
    add("--http", choices=HTTP_CHOICES, default="auto", help="HTTP/1.1 parser (default: httptools)")
    add("--http2", action=switch, default=True, help="serve HTTP/2 too: ALPN h2 with TLS, h2c with prior knowledge")
    add(
        "--h2-engine",
        choices=H2_ENGINE_CHOICES,
        default="auto",
        help="HTTP/2 engine: auto (nghttp2 where it was built, else h2), nghttp2, h2",
    )
    add("--h2-max-concurrent-streams", type=int, default=100, help="HTTP/2 streams a client may have open at once")
    add("--h2-initial-window-size", type=int, default=65535, help="HTTP/2 receive window of each stream, in bytes")
    add("--h2-max-frame-size", type=int, default=16384, help="largest HTTP/2 frame payload the server accepts")
    add("--h2-max-header-list-size", type=int, default=65536, help="largest decoded HTTP/2 header list, in bytes")
    add("--h2c-upgrade", action=switch, default=False, help="take up HTTP/1.1 requests asking for Upgrade: h2c")
    add(
        "--h2-stall-timeout",
        type=float,
        default=30.0,
        help="seconds an HTTP/2 response may wait on a closed window or an unread socket",
    )
    add("--h2-ping-interval", type=float, help="PING an HTTP/2 client silent for this many seconds (default: never)")
    add("--h2-ping-timeout", type=float, default=20.0, help="seconds an HTTP/2 client has to answer that PING")
    add(
        "--ws",
        choices=WS_CHOICES,
        default="auto",
        help="WebSocket engine: auto (fastserve's own), wsproto, none (websockets/websockets-sansio: as auto)",
    )
    add("--ws-max-size", type=int, default=16 * 1024 * 1024, help="largest WebSocket message")
    add("--ws-max-queue", type=int, default=32, help="WebSocket messages queued for the app")
    add("--ws-ping-interval", type=float, default=20.0, help="seconds between WebSocket pings")
    add("--ws-ping-timeout", type=float, default=20.0, help="seconds to wait for a WebSocket pong")
    add("--ws-per-message-deflate", type=_bool, default=True, help="WebSocket per-message deflate")
    add("--lifespan", choices=LIFESPAN_CHOICES, default="auto", help="lifespan protocol (default auto)")
    add("--interface", choices=INTERFACE_CHOICES, default="auto", help="application interface")
    add("--env-file", help="load environment variables from this .env file")
    add("--log-config", help="logging configuration file (.json, .yaml or .ini)")
    add("--log-level", choices=tuple(LOG_LEVELS), help="log level (default info)")
    add("--access-log", action=switch, default=True, help="log every request (default on)")
    add("--access-log-format", help="access line in gunicorn's atoms, e.g. '%%(h)s \"%%(r)s\" %%(s)s %%(D)s'")
    add("--access-log-json", action="store_true", help="access lines as one JSON object each")
    add("--use-colors", action=switch, default=None, help="colours in log lines (default: on a terminal)")
    add(
        "--proxy-headers",
        action=switch,
        default=True,
        help="read the client from trusted proxies' headers (default on)",
    )
    add("--server-header", action=switch, default=True, help="send 'server: fastserve' (default on)")
    add("--date-header", action=switch, default=True, help="send a Date header (default on)")
    add("--forwarded-allow-ips", help="trusted proxies: IPs, networks, * or unix: (default 127.0.0.1,::1)")
    add(
        "--forwarded-style", choices=FORWARDED_STYLES, default="x-forwarded", help="X-Forwarded-* or RFC 7239 Forwarded"
    )
    add("--proxy-protocol", action="store_true", help="connections start with a PROXY protocol v1/v2 header")
    add("--proxy-allow-from", help="addresses allowed to send PROXY headers (default: --forwarded-allow-ips)")
    add("--root-path", default="", help="ASGI root_path, for apps mounted below a prefix")
    add("--limit-concurrency", type=int, help="answer 503 above this many requests in flight")
    add(
        "--reset-contextvars",
        action="store_true",
        help="run each request in an empty context (default: a copy of the lifespan's)",
    )
    add("--backlog", type=int, default=2048, help="listen backlog (default 2048)")
    add("--limit-max-requests", type=int, help="a worker leaves (and is replaced) after this many requests")
    add("--limit-max-requests-jitter", type=int, default=0, help="add up to this many to each worker's limit")
    add("--timeout-keep-alive", type=float, default=5, help="close idle keep-alive connections after this (s)")
    add("--timeout-graceful-shutdown", type=float, default=30, help="longest wait for requests at shutdown (s)")
    add(
        "--timeout-worker-healthcheck",
        type=float,
        default=5,
        help="kill a worker silent this long (s)",
    )
    add("--timeout-request-header", type=float, default=30, help="a request head must arrive within this (s)")
    add(
        "--timeout-request-body",
        type=float,
        default=30,
        help="longest wait for more of a request body (s; 0: none)",
    )
    add(
        "--timeout-lifespan-shutdown",
        type=float,
        default=30,
        help="longest wait for the app's lifespan shutdown (s; 0: none)",
    )
    add("--limit-request-line", type=int, default=8190, help="longest request target, in bytes (414 above)")
    add("--limit-request-fields", type=int, default=100, help="most request header fields (431 above)")
    add("--limit-request-field-size", type=int, default=8190, help="largest request header field (431 above)")
    add("--ssl-keyfile", help="TLS private key file")
    add("--ssl-certfile", help="TLS certificate file (turns TLS on)")
    add("--ssl-keyfile-password", help="password of the TLS key")
    add("--ssl-version", type=int, default=int(ssl.PROTOCOL_TLS_SERVER), help="ssl module protocol constant")
    add("--ssl-cert-reqs", type=int, default=int(ssl.CERT_NONE), help="client certs: 0 no, 1 optional, 2 required")
    add("--ssl-ca-certs", help="CA certificates that client certificates are verified with")
    add("--ssl-ciphers", help="OpenSSL cipher list (default: OpenSSL's)")
    add("--timeout-ssl-handshake", type=float, default=10, help="a TLS handshake must finish within this (s)")
    add("--header", dest="headers", action="append", help="default response header 'name:value' (repeatable)")
    add("--app-dir", default="", help="look for the application in this directory (default: current)")
    add("--h11-max-incomplete-event-size", type=int, help="largest request head, in bytes")
    add("--factory", action="store_true", help="the application is a factory to call")
    return parser


def _env_names(action: argparse.Action) -> list[str]:
    """FASTSERVE_<FLAG>, then uvicorn's UVICORN_<PARAMETER> (e.g. --header: UVICORN_HEADERS)."""
    flag = action.option_strings[0].lstrip("-").replace("-", "_").upper()
    keys = dict.fromkeys([flag, action.dest.upper()])
    names = [prefix + key for prefix in ENV_PREFIXES for key in keys]
    if action.dest in EXTRA_ENV:
        names.append(EXTRA_ENV[action.dest])
    return names


def _env_value(action: argparse.Action) -> str | None:
    for name in _env_names(action):
        value = os.environ.get(name)
        if value is not None:
            return value
    return None


def _convert(action: argparse.Action, text: str) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
        return _bool(text)
    if isinstance(action, argparse._AppendAction):
        return text.split()
    converter: Callable[[str], Any] = action.type or str  # type: ignore[assignment]
    value = converter(text)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return value


def apply_environment(parser: argparse.ArgumentParser) -> None:
    """Use the environment as the defaults, so that the command line still wins."""
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        text = _env_value(action)
        if text is None:
            continue
        try:
            parser.set_defaults(**{action.dest: _convert(action, text)})
        except (ValueError, TypeError) as exc:
            raise UsageError(f"environment value for {action.option_strings[0]} ({text!r}): {exc}") from None


def version_line(
    http: str = "auto", loop: str = "auto", ws: str = "auto", http2: bool = True, h2_engine: str = "auto"
) -> str:
    from fastserve.protocols import describe, describe_http2
    from fastserve.protocols.websocket_codec import IMPLEMENTATION as websocket_codec

    python = f"{platform.python_implementation()} {platform.python_version()}"
    websocket = {"none": "off", "wsproto": "wsproto"}.get(ws, websocket_codec)
    return (
        f"fastserve {__version__} (http: {describe(http)}, http2: {describe_http2(h2_engine) if http2 else 'off'}, "
        f"websocket: {websocket}, loop: {resolve_loop(loop)}, {python})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        apply_environment(parser)
        args = vars(parser.parse_args(argv))
        if args.pop("version"):
            print(version_line(args["http"], args["loop"], args["ws"], args["http2"], args["h2_engine"]))
            return 0
        app = args.pop("app")
        if not app:
            raise UsageError("missing the application argument, e.g. 'fastserve main:app'")
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if args["log_config"] is None:
        del args["log_config"]
    if not args["app_dir"]:
        args["app_dir"] = "."
    return serve_app(app, **args)


def entry_point() -> NoReturn:
    sys.exit(main())

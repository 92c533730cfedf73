"""``fastserve APP``: argv and the environment turned into a Config.

Flags keep uvicorn's names, meanings and wording (click, as uvicorn's). Each
flag also reads ``FASTSERVE_<FLAG>`` and then uvicorn's ``UVICORN_<NAME>`` from
the environment (plus ``WEB_CONCURRENCY`` and ``FORWARDED_ALLOW_IPS``); the
command line wins. ``--help`` shows the options by topic, each with its
default and its environment variables.
"""

from __future__ import annotations

import os
import platform
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from fastserve import __version__
from fastserve.config import (
    H2_ENGINE_CHOICES,
    HTTP_CHOICES,
    INTERFACE_CHOICES,
    LIFESPAN_CHOICES,
    LOOP_CHOICES,
    WS_CHOICES,
    Config,
    ConfigError,
    StartupError,
    resolve_loop,
)
from fastserve.logging import LOG_LEVELS
from fastserve.main import report_startup_error, serve
from fastserve.proxy import FORWARDED_STYLES

ENV_PREFIXES = ("FASTSERVE_", "UVICORN_")
EXTRA_ENV = {"workers": "WEB_CONCURRENCY", "forwarded_allow_ips": "FORWARDED_ALLOW_IPS"}

# The topics of --help, in order.
SECTIONS = (
    "Application",
    "Server",
    "Workers and reload",
    "HTTP",
    "HTTP/2",
    "WebSocket",
    "TLS",
    "Proxies",
    "Logging",
    "Limits and timeouts",
    "Other",
)


class Option(click.Option):
    """An option with its --help topic, its environment variables and a default told in words where needed.

    ``uvicorn``: uvicorn has this option, so ``UVICORN_<NAME>`` is shown too
    (it is read for every option). ``default_text``: the default, where the
    value itself (None) does not say it.
    """

    def __init__(
        self,
        *args: Any,
        section: str,
        uvicorn: bool = True,
        default_text: str | None = None,
        environment: bool = True,
        **kwargs: Any,
    ) -> None:
        # (click may keep an unset default as a sentinel of its own: what was declared is kept here)
        self.declared_default = kwargs.get("default", False if kwargs.get("is_flag") else None)
        super().__init__(*args, **kwargs)
        assert section in SECTIONS, section
        self.section = section
        self.default_text = default_text
        flag = self.opts[0].lstrip("-").replace("-", "_").upper()
        name = (self.name or flag).upper()
        # Read (first found wins): FASTSERVE_<FLAG>, FASTSERVE_<NAME>, UVICORN_<FLAG>, UVICORN_<NAME>, then the extra.
        read = [prefix + key for prefix in ENV_PREFIXES for key in dict.fromkeys([flag, name])]
        shown = ["FASTSERVE_" + flag] + (["UVICORN_" + name] if uvicorn else [])
        if self.name in EXTRA_ENV:
            read.append(EXTRA_ENV[self.name])
            shown.append(EXTRA_ENV[self.name])
        self.envvar = read if environment else None
        self.shown_envvars = shown if environment else []

    def get_error_hint(self, ctx: click.Context) -> str:
        hint = super().get_error_hint(ctx)
        if self.name and ctx.get_parameter_source(self.name) is click.core.ParameterSource.ENVIRONMENT:
            variable = next((name for name in self.envvar or () if name in os.environ), None)
            return f"{hint} (from the environment variable {variable})"
        return hint

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)  # (show_default and show_envvar off: the extras are added here)
        if record is None:
            return None
        spec, help_text = record
        extras = []
        default = self.describe_default() if self.shown_envvars else None  # (--version: no default, no env)
        if default is not None:
            extras.append(f"default: {default}")
        if self.shown_envvars:
            extras.append("env: " + ", ".join(self.shown_envvars))
        return spec, f"{help_text}  [{'; '.join(extras)}]" if extras else help_text

    def describe_default(self) -> str | None:
        if self.default_text is not None:
            return self.default_text
        default = self.declared_default
        if self.is_flag:
            return "on" if default else "off"
        if default is None:
            return None
        if default == "":
            return '""'
        if isinstance(default, float) and default.is_integer():
            return str(int(default))
        return str(default)


class Command(click.Command):
    """Lists the options under their topics."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {name: [] for name in SECTIONS}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # (APP is in the usage line and the description)
            record = param.get_help_record(ctx)
            if record is not None:
                sections[getattr(param, "section", "Other")].append(record)
        for name, records in sections.items():
            if records:
                with formatter.section(name):
                    formatter.write_dl(records)


class OctalMode(click.ParamType):
    name = "MODE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(value, 8)
        except ValueError:
            self.fail(f"{value!r} is not an octal file mode such as 660.", param, ctx)


def option(*decls: str, section: str, **kwargs: Any) -> Callable[[Any], Any]:
    return click.option(*decls, cls=Option, section=section, show_default=False, **kwargs)


SECONDS = {"type": float, "metavar": "SECONDS"}
BYTES = {"type": int, "metavar": "BYTES"}

# fmt: off
OPTIONS: list[Callable[[Any], Any]] = [
    # Application
    option("--app-dir", default="", metavar="DIR", section="Application", default_text="the current directory",
           help="Look for APP in the specified directory, by adding this to the PYTHONPATH."),
    option("--factory", is_flag=True, section="Application",
           help="Treat APP as an application factory, i.e. a () -> <ASGI app> callable."),
    option("--interface", type=click.Choice(INTERFACE_CHOICES), default="auto", section="Application",
           help="Select ASGI3 or ASGI2 as the application interface."),
    option("--lifespan", type=click.Choice(LIFESPAN_CHOICES), default="auto", section="Application",
           help="Lifespan implementation."),
    option("--env-file", metavar="FILE", section="Application", help="Environment configuration file."),
    option("--root-path", default="", metavar="PATH", section="Application",
           help="Set the ASGI 'root_path' for applications submounted below a given URL path."),
    option("--reset-contextvars", is_flag=True, section="Application",
           help="Run each ASGI request in a fresh contextvars.Context. Hides context set in the lifespan."),
    # Server
    option("--host", default="127.0.0.1", metavar="ADDRESS", section="Server", help="Bind socket to this host."),
    option("--port", type=int, default=8000, metavar="PORT", section="Server",
           help="Bind socket to this port. If 0, an available port will be picked."),
    option("--uds", metavar="PATH", section="Server", help="Bind to a UNIX domain socket."),
    option("--uds-permissions", type=OctalMode(), default=0o666, section="Server", uvicorn=False,
           default_text="666", help="File mode of the --uds socket, in octal."),
    option("--fd", type=int, metavar="FD", section="Server", help="Bind to socket from this file descriptor."),
    option("--bind", "bind", multiple=True, metavar="ADDRESS", section="Server", uvicorn=False,
           help="Listen here: HOST:PORT, [V6]:PORT, unix:PATH or fd://N; repeatable; replaces --host/--port."),
    option("--backlog", type=int, default=2048, metavar="N", section="Server",
           help="Maximum number of connections to hold in backlog."),
    option("--loop", type=click.Choice(LOOP_CHOICES), default="auto", section="Server",
           help="Event loop implementation (auto: uvloop when installed)."),
    # Workers and reload
    option("--workers", type=int, metavar="N", section="Workers and reload", default_text="$WEB_CONCURRENCY or 1",
           help="Number of worker processes. Not valid with --reload."),
    option("--reuse-port", is_flag=True, section="Workers and reload", uvicorn=False,
           help="Each worker binds its own SO_REUSEPORT listener."),
    option("--workers-max-rss", type=float, metavar="MIB", section="Workers and reload", uvicorn=False,
           default_text="none", help="Replace a worker whose resident memory exceeds this many MiB."),
    option("--workers-lifetime", type=float, metavar="SECONDS", section="Workers and reload", uvicorn=False,
           default_text="none", help="Replace each worker after about this many seconds."),
    option("--limit-max-requests", type=int, metavar="N", section="Workers and reload", default_text="none",
           help="Maximum number of requests to service before terminating the process (a worker is replaced)."),
    option("--limit-max-requests-jitter", type=int, default=0, metavar="N", section="Workers and reload",
           help="Maximum jitter to add to --limit-max-requests, so that workers do not all restart together."),
    option("--timeout-worker-healthcheck", default=5.0, section="Workers and reload", **SECONDS,
           help="Maximum number of seconds to wait for a worker to respond to a healthcheck."),
    option("--reload", is_flag=True, section="Workers and reload", help="Enable auto-reload (needs watchfiles)."),
    option("--reload-dir", "reload_dirs", multiple=True, metavar="DIR", section="Workers and reload",
           help="Set reload directories explicitly, instead of using the current working directory."),
    option("--reload-include", "reload_includes", multiple=True, metavar="GLOB", section="Workers and reload",
           help="Set glob patterns to include while watching for files (default '*.py')."),
    option("--reload-exclude", "reload_excludes", multiple=True, metavar="GLOB", section="Workers and reload",
           help="Set glob patterns to exclude while watching for files."),
    option("--reload-delay", default=0.25, section="Workers and reload", **SECONDS,
           help="Delay between previous and next check if application needs to be reloaded."),
    # HTTP
    option("--http", type=click.Choice(HTTP_CHOICES), default="auto", section="HTTP",
           help="HTTP/1.1 parser (auto: httptools)."),
    option("--header", "headers", multiple=True, metavar="NAME:VALUE", section="HTTP",
           help="Specify custom default HTTP response headers as a Name:Value pair; repeatable."),
    option("--server-header/--no-server-header", default=True, section="HTTP",
           help="Enable/Disable default Server header."),
    option("--date-header/--no-date-header", default=True, section="HTTP", help="Enable/Disable default Date header."),
    # HTTP/2
    option("--http2/--no-http2", default=True, section="HTTP/2",
           help="Serve HTTP/2 too: ALPN h2 with TLS, h2c with prior knowledge."),
    option("--h2-engine", type=click.Choice(H2_ENGINE_CHOICES), default="auto", section="HTTP/2", uvicorn=False,
           help="HTTP/2 engine (auto: nghttp2 where it was built, else h2)."),
    option("--h2c-upgrade/--no-h2c-upgrade", default=False, section="HTTP/2", uvicorn=False,
           help="Take up HTTP/1.1 requests asking for Upgrade: h2c."),
    option("--h2-max-concurrent-streams", type=int, default=100, metavar="N", section="HTTP/2", uvicorn=False,
           help="HTTP/2 streams a client may have open at once."),
    option("--h2-initial-window-size", default=65535, section="HTTP/2", uvicorn=False, **BYTES,
           help="HTTP/2 receive window of each stream."),
    option("--h2-max-frame-size", default=16384, section="HTTP/2", uvicorn=False, **BYTES,
           help="Largest HTTP/2 frame payload the server accepts."),
    option("--h2-max-header-list-size", default=65536, section="HTTP/2", uvicorn=False, **BYTES,
           help="Largest decoded HTTP/2 header list."),
    option("--h2-stall-timeout", default=30.0, section="HTTP/2", uvicorn=False, **SECONDS,
           help="How long an HTTP/2 response may wait on a closed window or an unread socket."),
    option("--h2-ping-interval", section="HTTP/2", uvicorn=False, default_text="never", **SECONDS,
           help="PING an HTTP/2 client that has been silent this long."),
    option("--h2-ping-timeout", default=20.0, section="HTTP/2", uvicorn=False, **SECONDS,
           help="How long an HTTP/2 client has to answer that PING."),
    # WebSocket
    option("--ws", type=click.Choice(WS_CHOICES), default="auto", section="WebSocket",
           help="WebSocket protocol implementation (auto, websockets, websockets-sansio: fastserve's own)."),
    option("--ws-max-size", default=16 * 1024 * 1024, section="WebSocket", **BYTES,
           help="WebSocket max size message in bytes."),
    option("--ws-max-queue", type=int, default=32, metavar="N", section="WebSocket",
           help="The maximum length of the WebSocket message queue."),
    option("--ws-ping-interval", default=20.0, section="WebSocket", **SECONDS, help="WebSocket ping interval."),
    option("--ws-ping-timeout", default=20.0, section="WebSocket", **SECONDS, help="WebSocket ping timeout."),
    option("--ws-per-message-deflate", type=bool, default=True, section="WebSocket",
           help="WebSocket per-message-deflate compression."),
    # TLS
    option("--ssl-certfile", metavar="FILE", section="TLS", help="SSL certificate file (turns TLS on)."),
    option("--ssl-keyfile", metavar="FILE", section="TLS", help="SSL key file."),
    option("--ssl-keyfile-password", metavar="PASSWORD", section="TLS", help="SSL keyfile password."),
    option("--ssl-version", type=int, default=int(ssl.PROTOCOL_TLS_SERVER), metavar="N", section="TLS",
           help="SSL version to use (see stdlib ssl module's)."),
    option("--ssl-cert-reqs", type=int, default=int(ssl.CERT_NONE), metavar="N", section="TLS",
           help="Whether client certificate is required (see stdlib ssl module's): 0 no, 1 optional, 2 required."),
    option("--ssl-ca-certs", metavar="FILE", section="TLS", help="CA certificates file."),
    option("--ssl-ciphers", metavar="CIPHERS", section="TLS", default_text="OpenSSL's",
           help="Ciphers to use (see stdlib ssl module's)."),
    option("--timeout-ssl-handshake", default=10.0, section="TLS", uvicorn=False, **SECONDS,
           help="A TLS handshake must finish within this."),
    # Proxies
    option("--proxy-headers/--no-proxy-headers", default=True, section="Proxies",
           help="Enable/Disable X-Forwarded-Proto, X-Forwarded-For to populate url scheme and remote address info."),
    option("--forwarded-allow-ips", metavar="ADDRESSES", section="Proxies", default_text="127.0.0.1,::1",
           help="Comma separated list of IP Addresses, IP Networks, or literals (e.g. UNIX Socket path) to trust "
           "with proxy headers. The literal '*' means trust everything."),
    option("--forwarded-style", type=click.Choice(FORWARDED_STYLES), default="x-forwarded", section="Proxies",
           uvicorn=False, help="Read X-Forwarded-* or RFC 7239 Forwarded."),
    option("--proxy-protocol", is_flag=True, section="Proxies", uvicorn=False,
           help="Connections start with a PROXY protocol v1/v2 header."),
    option("--proxy-allow-from", metavar="ADDRESSES", section="Proxies", uvicorn=False,
           default_text="--forwarded-allow-ips", help="Addresses allowed to send PROXY headers."),
    # Logging
    option("--log-config", metavar="FILE", section="Logging",
           help="Logging configuration file. Supported formats: .ini, .json, .yaml."),
    option("--log-level", type=click.Choice(tuple(LOG_LEVELS)), section="Logging", default_text="info",
           help="Log level."),
    option("--access-log/--no-access-log", default=True, section="Logging", help="Enable/Disable access log."),
    option("--access-log-format", metavar="FORMAT", section="Logging", uvicorn=False,
           help="Access line in gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(D)s'."),
    option("--access-log-json", is_flag=True, section="Logging", uvicorn=False,
           help="Access lines as one JSON object each."),
    option("--use-colors/--no-use-colors", default=None, section="Logging", default_text="on a terminal",
           help="Enable/Disable colorized logging."),
    # Limits and timeouts
    option("--limit-concurrency", type=int, metavar="N", section="Limits and timeouts", default_text="none",
           help="Maximum number of requests in flight to allow, before issuing HTTP 503 responses."),
    option("--limit-request-line", default=8190, section="Limits and timeouts", uvicorn=False, **BYTES,
           help="Longest request target (414 above)."),
    option("--limit-request-fields", type=int, default=100, metavar="N", section="Limits and timeouts",
           uvicorn=False, help="Most request header fields (431 above)."),
    option("--limit-request-field-size", default=8190, section="Limits and timeouts", uvicorn=False, **BYTES,
           help="Largest request header field (431 above)."),
    option("--h11-max-incomplete-event-size", section="Limits and timeouts", **BYTES,
           default_text="line + fields × field size", help="Largest request head."),
    option("--timeout-keep-alive", default=5.0, section="Limits and timeouts", **SECONDS,
           help="Close Keep-Alive connections if no new data is received within this timeout."),
    option("--timeout-request-header", default=30.0, section="Limits and timeouts", uvicorn=False, **SECONDS,
           help="A request head must arrive within this, from its first byte (408 after)."),
    option("--timeout-request-body", default=30.0, section="Limits and timeouts", uvicorn=False, **SECONDS,
           help="Longest wait for more of a request body (0: none)."),
    option("--timeout-graceful-shutdown", default=30.0, section="Limits and timeouts", **SECONDS,
           help="Maximum number of seconds to wait for graceful shutdown."),
    option("--timeout-lifespan-shutdown", default=30.0, section="Limits and timeouts", uvicorn=False, **SECONDS,
           help="Longest wait for the app's lifespan shutdown (0: none)."),
]
# fmt: on


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


def _run(ctx: click.Context, /, app: str | None, version: bool, **options: Any) -> int:
    if version:
        click.echo(
            version_line(options["http"], options["loop"], options["ws"], options["http2"], options["h2_engine"])
        )
        return 0
    if not app:
        raise click.MissingParameter(ctx=ctx, param=ctx.command.params[0])
    if options["log_config"] is None:
        del options["log_config"]
    if not options["app_dir"]:
        options["app_dir"] = "."
    for name in ("bind", "headers", "reload_dirs", "reload_includes", "reload_excludes"):
        options[name] = list(options[name]) or None
    try:
        config = Config(app, **options)
    except StartupError as exc:
        return report_startup_error(exc)
    except ConfigError as exc:
        raise click.UsageError(str(exc), ctx) from None
    return serve(config)


def build_command() -> click.Command:
    def callback(**params: Any) -> int:
        return _run(click.get_current_context(), **params)

    for decorate in reversed(OPTIONS):
        callback = decorate(callback)
    callback = click.option(
        "--version", is_flag=True, cls=Option, section="Other", show_default=False, environment=False,
        help="Display the fastserve version (and what serves each protocol) and exit.",
    )(callback)  # fmt: skip
    callback = click.argument("app", required=False, metavar="APP")(callback)
    return click.command(
        "fastserve",
        cls=Command,
        context_settings={"help_option_names": ["--help"], "max_content_width": 120},
        help="Serve APP, an ASGI application given as <module>:<attribute> (e.g. main:app).",
    )(callback)


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """The options ``argv`` and the environment give, as the command would use them (for tests)."""
    command = build_command()
    with command.make_context("fastserve", list(argv)) as ctx:
        return dict(ctx.params)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code (2 for a usage error, as click's)."""
    command = build_command()
    try:
        return command.main(args=argv, prog_name="fastserve", standalone_mode=False) or 0
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 1


def entry_point() -> NoReturn:
    sys.exit(main())

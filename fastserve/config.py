"""Every option of the server, validated once, and the loading of the application."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import os
import ssl
import sys
from collections.abc import Callable
from typing import Any

from fastserve.access_log import AccessLogFormatError, access_log_format
from fastserve.asgi import ASGI2Adapter, ASGIApp, ASGIMessageError, validate_header
from fastserve.logging import LOG_LEVELS, LOGGING_CONFIG, configure_logging
from fastserve.protocols.http2 import HTTP2Settings
from fastserve.protocols.websocket import WebSocketSettings
from fastserve.proxy import ProxyConfigError, ProxyTrust
from fastserve.sockets import Address, BindError, parse_bind
from fastserve.tls import TLSError, create_ssl_context

logger = logging.getLogger("fastserve.error")

LOOP_CHOICES = ("auto", "asyncio", "uvloop")
HTTP_CHOICES = ("auto", "httptools", "h11")
H2_ENGINE_CHOICES = ("auto", "nghttp2", "h2")
WS_CHOICES = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
LIFESPAN_CHOICES = ("auto", "on", "off")
INTERFACE_CHOICES = ("auto", "asgi3", "asgi2")
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"


class ConfigError(ValueError):
    """A setting a person can fix; its message is one line that says how.

    A usage error: the process exits with 2, as uvicorn (click) does for a bad option.
    """

    exit_code = 2


class StartupError(ConfigError):
    """The server cannot start as configured: logged as an error, and the process exits with ``exit_code``.

    ``cause`` is an exception of the application's own (its import, its
    factory), whose traceback is worth showing, once.
    """

    def __init__(self, message: str, exit_code: int = 3, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.cause = cause


class AppLoadError(StartupError):
    """The application string does not lead to an application (exit 3, as uvicorn)."""


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"--{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _at_least(name: str, value: float | None, minimum: float) -> None:
    if value is not None and value < minimum:
        raise ConfigError(f"--{name} must be at least {minimum}; got {value}")


def _between(name: str, value: int, minimum: int, maximum: int) -> None:
    if not minimum <= value <= maximum:
        raise ConfigError(f"--{name} must be between {minimum} and {maximum}; got {value}")


def _parse_header(header: str | tuple[str, str] | list[str]) -> tuple[str, str]:
    if isinstance(header, str):
        name, sep, value = header.partition(":")
        if not sep:
            raise ConfigError(f"--header must look like 'name:value'; got {header!r}")
    else:
        name, value = header
    name, value = name.strip(), value.strip()
    try:
        validate_header((name.encode("latin-1"), value.encode("latin-1")))
    except (UnicodeEncodeError, ASGIMessageError):
        raise ConfigError(f"--header {header!r} is not a valid HTTP header") from None
    return name, value


class Config:
    """The options of one fastserve server, with uvicorn's names and meanings."""

    def __init__(
        self,
        app: ASGIApp | Callable[..., Any] | str,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        fd: int | None = None,
        loop: str = "auto",
        http: str = "auto",
        http2: bool = True,
        h2_max_concurrent_streams: int = 100,
        h2_initial_window_size: int = 65535,
        h2_max_frame_size: int = 16384,
        h2_max_header_list_size: int = 64 * 1024,
        h2_stall_timeout: float = 30.0,
        h2_ping_interval: float | None = None,
        h2_ping_timeout: float = 20.0,
        h2c_upgrade: bool = False,
        h2_engine: str = "auto",
        ws: str = "auto",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_max_queue: int = 32,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        lifespan: str = "auto",
        env_file: str | os.PathLike[str] | None = None,
        log_config: dict[str, Any] | str | None = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        access_log_format: str | None = None,
        access_log_json: bool = False,
        use_colors: bool | None = None,
        interface: str = "auto",
        reload: bool = False,
        reload_dirs: list[str] | str | None = None,
        reload_delay: float = 0.25,
        reload_includes: list[str] | str | None = None,
        reload_excludes: list[str] | str | None = None,
        workers: int | None = None,
        reuse_port: bool = False,
        workers_max_rss: float | None = None,
        workers_lifetime: float | None = None,
        bind: list[str] | str | None = None,
        uds_permissions: int = 0o666,
        proxy_headers: bool = True,
        server_header: bool = True,
        date_header: bool = True,
        forwarded_allow_ips: list[str] | str | None = None,
        forwarded_style: str = "x-forwarded",
        proxy_protocol: bool = False,
        proxy_allow_from: list[str] | str | None = None,
        root_path: str = "",
        limit_concurrency: int | None = None,
        reset_contextvars: bool = False,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = 0,
        backlog: int = 2048,
        timeout_keep_alive: float = 5,
        timeout_notify: int = 30,
        timeout_graceful_shutdown: float | None = 30,
        timeout_worker_healthcheck: float = 5,
        timeout_request_header: float = 30,
        timeout_request_body: float = 30,
        timeout_lifespan_shutdown: float = 30,
        limit_request_line: int = 8190,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        callback_notify: Callable[..., Any] | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = ssl.PROTOCOL_TLS_SERVER,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        ssl_ca_certs: str | None = None,
        ssl_ciphers: str | None = None,
        timeout_ssl_handshake: float = 10,
        headers: list[tuple[str, str]] | list[str] | None = None,
        factory: bool = False,
        h11_max_incomplete_event_size: int | None = None,
        app_dir: str | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.uds = uds
        self.fd = fd
        self.loop = loop
        self.http = http
        self.http2 = http2
        self.h2_max_concurrent_streams = h2_max_concurrent_streams
        self.h2_initial_window_size = h2_initial_window_size
        self.h2_max_frame_size = h2_max_frame_size
        self.h2_max_header_list_size = h2_max_header_list_size
        self.h2_stall_timeout = h2_stall_timeout
        self.h2_ping_interval = h2_ping_interval
        self.h2_ping_timeout = h2_ping_timeout
        self.h2c_upgrade = h2c_upgrade
        self.h2_engine = h2_engine
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.lifespan = lifespan
        self.env_file = env_file
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        self.access_log_format = access_log_format
        self.access_log_json = access_log_json
        self.use_colors = use_colors
        self.interface = interface
        self.reload = reload
        self.reload_dirs = reload_dirs
        self.reload_delay = reload_delay
        self.reload_includes = reload_includes
        self.reload_excludes = reload_excludes
        self.workers = workers or 1
        self.reuse_port = reuse_port
        self.workers_max_rss = workers_max_rss
        self.workers_lifetime = workers_lifetime
        self.bind = [bind] if isinstance(bind, str) else list(bind or [])
        self.uds_permissions = uds_permissions
        self.proxy_headers = proxy_headers
        self.server_header = server_header
        self.date_header = date_header
        if forwarded_allow_ips is None:
            forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)
        self.forwarded_allow_ips = forwarded_allow_ips
        self.forwarded_style = forwarded_style
        self.proxy_protocol = proxy_protocol
        self.proxy_allow_from = proxy_allow_from  # None: the --forwarded-allow-ips list
        self.root_path = root_path
        self.limit_concurrency = limit_concurrency
        self.reset_contextvars = reset_contextvars
        self.limit_max_requests = limit_max_requests
        self.limit_max_requests_jitter = limit_max_requests_jitter
        self.backlog = backlog
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_notify = timeout_notify
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        self.timeout_request_header = timeout_request_header
        self.timeout_request_body = timeout_request_body
        self.timeout_lifespan_shutdown = timeout_lifespan_shutdown
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_field_size = limit_request_field_size
        self.callback_notify = callback_notify
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.timeout_ssl_handshake = timeout_ssl_handshake
        self.factory = factory
        self.h11_max_incomplete_event_size = h11_max_incomplete_event_size
        self.app_dir = app_dir
        self.headers = [_parse_header(header) for header in headers or []]
        self.loaded_app: ASGIApp | None = None
        self._validate()
        self.addresses = self._addresses()
        if env_file is not None:
            self._load_env_file(env_file)
        self.configure_logging()
        if self.ssl_certfile:
            self.ssl_context()  # a bad certificate, key or option is reported now, in one line

    def _validate(self) -> None:
        _choice("loop", self.loop, LOOP_CHOICES)
        _choice("http", self.http, HTTP_CHOICES)
        _choice("ws", self.ws, WS_CHOICES)
        _choice("h2-engine", self.h2_engine, H2_ENGINE_CHOICES)
        if self.h2_engine == "nghttp2" and HTTP2Settings.engine_class.name != "nghttp2":
            raise ConfigError("--h2-engine nghttp2: this build has no libnghttp2 (see the README's build note)")
        _at_least("ws-max-size", self.ws_max_size, 1)
        if self.ws_max_size >= 1 << 63:
            raise ConfigError(f"--ws-max-size must be below 2**63; got {self.ws_max_size}")
        _at_least("ws-max-queue", self.ws_max_queue, 1)
        _at_least("h2-max-concurrent-streams", self.h2_max_concurrent_streams, 1)
        _between("h2-initial-window-size", self.h2_initial_window_size, 1, 2**31 - 1)
        _between("h2-max-frame-size", self.h2_max_frame_size, 2**14, 2**24 - 1)
        _at_least("h2-max-header-list-size", self.h2_max_header_list_size, 1024)
        _at_least("h2-stall-timeout", self.h2_stall_timeout, 0.001)
        _at_least("h2-ping-interval", self.h2_ping_interval, 0.001)
        _at_least("h2-ping-timeout", self.h2_ping_timeout, 0.001)
        _choice("lifespan", self.lifespan, LIFESPAN_CHOICES)
        _choice("interface", self.interface, INTERFACE_CHOICES)
        if isinstance(self.log_level, str) and self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}; got {self.log_level!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535; got {self.port}")
        _at_least("backlog", self.backlog, 1)
        _at_least("timeout-keep-alive", self.timeout_keep_alive, 0)
        _at_least("timeout-request-header", self.timeout_request_header, 0.001)
        _at_least("timeout-graceful-shutdown", self.timeout_graceful_shutdown, 0)
        _at_least("timeout-request-body", self.timeout_request_body, 0)
        _at_least("timeout-lifespan-shutdown", self.timeout_lifespan_shutdown, 0)
        _at_least("limit-concurrency", self.limit_concurrency, 1)
        _at_least("limit-request-line", self.limit_request_line, 16)
        _at_least("limit-request-fields", self.limit_request_fields, 1)
        _at_least("limit-request-field-size", self.limit_request_field_size, 16)
        _at_least("h11-max-incomplete-event-size", self.h11_max_incomplete_event_size, 1024)
        _at_least("workers", self.workers, 1)
        _at_least("limit-max-requests", self.limit_max_requests, 1)
        _at_least("limit-max-requests-jitter", self.limit_max_requests_jitter, 0)
        _at_least("workers-max-rss", self.workers_max_rss, 1)
        _at_least("workers-lifetime", self.workers_lifetime, 1)
        _at_least("timeout-worker-healthcheck", self.timeout_worker_healthcheck, 0.1)
        _at_least("reload-delay", self.reload_delay, 0)
        if not 0 <= self.uds_permissions <= 0o777:
            raise ConfigError(f"--uds-permissions must be an octal mode such as 660; got {self.uds_permissions:o}")
        if self.reload and self.workers > 1:
            raise ConfigError("--reload and --workers cannot be used together: reload runs one worker")
        if (self.reload or self.workers > 1) and not isinstance(self.app, str):
            flag = "--reload" if self.reload else "--workers"
            raise ConfigError(f"{flag} needs the application as an import string, such as 'main:app'")
        if self.http == "httptools":
            from fastserve.protocols import httptools_available

            if not httptools_available():
                raise ConfigError("--http httptools: httptools is not installed (pip install httptools)")
        if self.reload and importlib.util.find_spec("watchfiles") is None:
            raise ConfigError("--reload needs watchfiles (pip install 'fastserve-asgi[reload]')")
        if self.loop == "uvloop" and not _uvloop_available():
            raise ConfigError("--loop uvloop: uvloop is not installed on this platform")
        _at_least("timeout-ssl-handshake", self.timeout_ssl_handshake, 0.001)
        if (self.ssl_keyfile or self.ssl_ca_certs) and not self.ssl_certfile:
            raise ConfigError("--ssl-keyfile and --ssl-ca-certs need --ssl-certfile")
        self.proxy_trust: ProxyTrust | None = None
        self.proxy_protocol_trust: ProxyTrust | None = None
        try:
            if self.proxy_headers:
                self.proxy_trust = ProxyTrust(self.forwarded_allow_ips, self.forwarded_style)
            if self.proxy_protocol and self.proxy_allow_from is None:
                self.proxy_protocol_trust = ProxyTrust(self.forwarded_allow_ips)
            elif self.proxy_protocol:
                self.proxy_protocol_trust = ProxyTrust(self.proxy_allow_from, flag="--proxy-allow-from")
        except ProxyConfigError as exc:
            raise ConfigError(str(exc)) from None
        try:
            self.access_format = access_log_format(self.access_log_format, self.access_log_json)
        except AccessLogFormatError as exc:
            raise ConfigError(str(exc)) from None

    def _addresses(self) -> list[Address]:
        """Where to listen: every --bind, else --uds, else --fd, else --host and --port."""
        if self.bind:
            try:
                return [parse_bind(text) for text in self.bind]
            except BindError as exc:
                raise ConfigError(str(exc)) from None
        if self.uds is not None:
            return [Address(path=self.uds)]
        if self.fd is not None:
            return [Address(fd=self.fd)]
        return [Address(host=self.host, port=self.port)]

    @property
    def supervised(self) -> bool:
        """Whether a supervisor runs the server in worker processes (--workers above 1, --reload)."""
        return self.workers > 1 or self.reload

    def _load_env_file(self, env_file: str | os.PathLike[str]) -> None:
        if not os.path.isfile(env_file):
            raise ConfigError(f"--env-file {env_file}: no such file")
        try:
            from dotenv import load_dotenv
        except ImportError:
            raise ConfigError("--env-file needs python-dotenv (pip install python-dotenv)") from None
        load_dotenv(dotenv_path=env_file)

    def configure_logging(self) -> None:
        try:
            configure_logging(
                self.log_config, self.log_level, self.access_log, self.use_colors, self.access_format is not None
            )
        except (ValueError, KeyError, TypeError, AttributeError, ImportError, OSError) as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith("--log-config") else f"--log-config: {message}") from None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A new SSL context from the --ssl-* options (None without --ssl-certfile)."""
        if not self.ssl_certfile:
            return None
        try:
            return create_ssl_context(
                certfile=os.fspath(self.ssl_certfile),
                keyfile=self.ssl_keyfile,
                password=self.ssl_keyfile_password,
                ssl_version=self.ssl_version,
                cert_reqs=self.ssl_cert_reqs,
                ca_certs=self.ssl_ca_certs,
                ciphers=self.ssl_ciphers,
            )
        except TLSError as exc:
            raise StartupError(str(exc), 1) from None  # (uvicorn exits 1 on bad TLS files)

    def websocket_settings(self) -> WebSocketSettings | None:
        """What serves WebSockets (None with --ws none: an upgrade request reaches the app as HTTP)."""
        if self.ws == "none":
            return None
        engine = "wsproto" if self.ws == "wsproto" else "fastserve"
        if engine == "wsproto" and importlib.util.find_spec("wsproto") is None:
            raise ConfigError("--ws wsproto needs the wsproto package (pip install wsproto)")
        if self.ws in ("websockets", "websockets-sansio"):
            logger.info("--ws %s: served by fastserve's own WebSocket implementation", self.ws)
        return WebSocketSettings(
            engine,
            self.ws_max_size,
            self.ws_max_queue,
            self.ws_ping_interval,
            self.ws_ping_timeout,
            self.ws_per_message_deflate,
        )

    def http2_settings(self) -> HTTP2Settings | None:
        """What serves HTTP/2 (None with --no-http2)."""
        if not self.http2:
            return None
        return HTTP2Settings(
            max_concurrent_streams=self.h2_max_concurrent_streams,
            initial_window_size=self.h2_initial_window_size,
            max_frame_size=self.h2_max_frame_size,
            max_header_list_size=self.h2_max_header_list_size,
            stall_timeout=self.h2_stall_timeout,
            ping_interval=self.h2_ping_interval,
            ping_timeout=self.h2_ping_timeout,
            h2c_upgrade=self.h2c_upgrade,
            engine_choice=self.h2_engine,
        )

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        if resolve_loop(self.loop) == "uvloop":
            import uvloop

            return uvloop.new_event_loop
        return asyncio.new_event_loop

    def load(self) -> ASGIApp:
        """Import (or call the factory of) the application and adapt it to ASGI 3."""
        if self.loaded_app is not None:
            return self.loaded_app
        if self.app_dir is not None:
            sys.path.insert(0, self.app_dir)
        app: Any = import_from_string(self.app) if isinstance(self.app, str) else self.app
        if self.factory:
            if not callable(app):
                raise AppLoadError(f"Error loading ASGI app factory: {type(app).__name__!r} object is not callable")
            try:
                app = app()
            except Exception as exc:
                # uvicorn's exit code for a factory that raises (its traceback, not a server's).
                raise StartupError(
                    f"Error loading ASGI app factory: {type(exc).__name__}: {exc}", 1, app_traceback(exc)
                ) from None
        elif isinstance(self.app, str) and _looks_like_factory(app):
            logger.warning("The app looks like a factory function; pass --factory to call it")
        interface = self.interface
        if interface == "auto":
            interface = "asgi3" if _is_asgi3(app) else "asgi2"
        self.loaded_app = ASGI2Adapter(app) if interface == "asgi2" else app
        return self.loaded_app


def import_from_string(import_str: str) -> Any:
    module_name, _, attrs = import_str.partition(":")
    if not module_name or not attrs:
        raise AppLoadError(
            f'Error loading ASGI app. Import string "{import_str}" must be in format "<module>:<attribute>".'
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f'Error loading ASGI app. Could not import module "{module_name}".') from None
        raise _import_failed(module_name, exc) from None
    except Exception as exc:
        raise _import_failed(module_name, exc) from None
    instance: Any = module
    try:
        for attr in attrs.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise AppLoadError(
            f'Error loading ASGI app. Attribute "{attrs}" not found in module "{module_name}".'
        ) from None
    return instance


def _import_failed(module_name: str, exc: Exception) -> StartupError:
    """The app's module raised while it was imported: exit 1, as under uvicorn, with the app's traceback."""
    return StartupError(
        f'Error loading ASGI app. Importing module "{module_name}" raised {type(exc).__name__}: {exc}',
        1,
        app_traceback(exc),
    )


def app_traceback(exc: BaseException) -> BaseException:
    """``exc`` with its traceback starting in the application's code (not in fastserve or importlib)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and _is_server_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _is_server_frame(filename: str) -> bool:
    return (
        filename.startswith("<frozen importlib") or filename.startswith(_PACKAGE_DIR) or filename == importlib.__file__
    )


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_asgi3(app: Any) -> bool:
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.isfunction(app) or inspect.ismethod(app):
        return inspect.iscoroutinefunction(app)
    return inspect.iscoroutinefunction(type(app).__call__) if callable(app) else False


def _looks_like_factory(app: Any) -> bool:
    if not inspect.isfunction(app) or inspect.iscoroutinefunction(app):
        return False
    return len(inspect.signature(app).parameters) == 0


def resolve_loop(loop: str) -> str:
    """The event loop that ``--loop`` names: 'uvloop' or 'asyncio' ('auto' picks uvloop when installed)."""
    if loop == "auto":
        return "uvloop" if _uvloop_available() else "asyncio"
    return loop


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True

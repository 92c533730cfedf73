"""``gunicorn -k fastserve.workers.FastserveWorker app:app``: fastserve under gunicorn's arbiter.

gunicorn binds the sockets, forks the workers and watches them; each worker
runs one fastserve Server on the inherited sockets. The gunicorn settings that
mean something to an HTTP server are honoured, graceful_timeout and the access
log format among them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from fastserve.config import Config
from fastserve.server import Server


class FastserveWorker(Worker):
    """A gunicorn worker class; ``CONFIG_KWARGS`` are extra Config options (as in uvicorn's)."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        error_log = logging.getLogger("fastserve.error")
        error_log.handlers = self.log.error_log.handlers
        error_log.setLevel(self.log.error_log.level)
        error_log.propagate = False
        access_log = logging.getLogger("fastserve.access")
        access_log.handlers = self.log.access_log.handlers if self.cfg.accesslog else []
        access_log.setLevel(logging.INFO)
        access_log.propagate = False

    def config_options(self) -> dict[str, Any]:
        """Config options from gunicorn's settings."""
        cfg = self.cfg
        options: dict[str, Any] = {
            "log_config": None,
            "lifespan": "auto",
            "timeout_keep_alive": cfg.keepalive,
            "timeout_graceful_shutdown": cfg.graceful_timeout,
            "timeout_notify": self.timeout,
            "callback_notify": self.notify,
            "limit_max_requests": self.max_requests if self.max_requests < sys.maxsize else None,
            "forwarded_allow_ips": cfg.forwarded_allow_ips,
            # "off", or "v1", "v2", "auto" (gunicorn 24+; a bool before): fastserve reads both versions.
            "proxy_protocol": cfg.proxy_protocol not in (False, None, "off"),
            "proxy_allow_from": cfg.proxy_allow_ips,
            "access_log": bool(cfg.accesslog),
            "access_log_format": cfg.access_log_format,
        }
        # gunicorn's 0 means "no limit"; fastserve keeps a bound on everything, so 0 leaves fastserve's default.
        for name in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
            value = getattr(cfg, name)
            if value:
                options[name] = value
        if cfg.is_ssl:
            options.update(
                ssl_certfile=cfg.certfile,
                ssl_keyfile=cfg.keyfile,
                ssl_version=cfg.ssl_version,
                ssl_cert_reqs=cfg.cert_reqs,
                ssl_ca_certs=cfg.ca_certs,
                ssl_ciphers=cfg.ciphers,
            )
            if options["ssl_version"] == getattr(ssl, "PROTOCOL_TLS", None):
                options["ssl_version"] = ssl.PROTOCOL_TLS_SERVER
        options.update(self.CONFIG_KWARGS)
        return options

    def init_signals(self) -> None:
        # The server installs its own SIGTERM/SIGINT handling on its event loop.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, lambda sig, frame: self.log.reopen_files())
        signal.siginterrupt(signal.SIGUSR1, False)

    def run(self) -> None:
        config = Config(self.wsgi, **self.config_options())
        server = Server(config)

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            # SIGQUIT is gunicorn's quick shutdown: no waiting for requests in flight.
            loop.add_signal_handler(signal.SIGQUIT, self._quit, server)
            await server.serve(sockets=[listener.sock for listener in self.sockets])

        with asyncio.Runner(loop_factory=config.loop_factory()) as runner:
            runner.run(serve())
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    @staticmethod
    def _quit(server: Server) -> None:
        server.force_exit = True
        server.handle_exit(signal.SIGINT)

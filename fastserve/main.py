"""``fastserve.run``: serve an application from Python code, as ``uvicorn.run`` does."""

from __future__ import annotations

import logging
import sys
from typing import Any

from fastserve.config import Config, ConfigError
from fastserve.server import STARTUP_FAILURE, Server

logger = logging.getLogger("fastserve.error")


def serve_app(app: Any, **options: Any) -> int:
    """Serve until shut down; the process exit code (0 clean, 1 usage/config, 3 startup failure)."""
    try:
        config = Config(app, **options)
        if config.supervised:
            from fastserve.supervisor import Supervisor

            return Supervisor(config).run()
        server = Server(config)
        server.run()
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0 if server.started else STARTUP_FAILURE


def run(app: Any, **options: Any) -> None:
    """Serve ``app`` (an ASGI application or an import string) with ``Config`` options."""
    code = serve_app(app, **options)
    if code:
        sys.exit(code)

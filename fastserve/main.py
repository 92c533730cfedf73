"""``fastserve.run``: serve an application from Python code, as ``uvicorn.run`` does; and the exit codes.

Exit codes, as uvicorn's where uvicorn has the same event: 0 after a clean
shutdown; 1 when the application's own code raises while it is imported or
built by its factory, or the TLS files are unusable; 2 for a usage error (an
option's value); 3 when the application cannot be found or does not start
(lifespan startup failure), or the address cannot be listened on.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from fastserve.config import Config, ConfigError, StartupError
from fastserve.protocols import build_warnings
from fastserve.server import STARTUP_FAILURE, Server

logger = logging.getLogger("fastserve.error")


def report_startup_error(exc: StartupError) -> int:
    """Log why the server cannot start, once (with the app's traceback if the app raised); the exit code."""
    logger.error("%s", exc, exc_info=exc.cause)
    return exc.exit_code


def serve(config: Config) -> int:
    """Serve ``config`` until shut down (in worker processes if it asks for them); the process exit code."""
    for warning in build_warnings(config.http2, config.h2_engine):
        logger.warning(warning)
    try:
        if config.supervised:
            from fastserve.supervisor import Supervisor

            return Supervisor(config).run()
        config.load()  # (as uvicorn: a wrong app string is one line, before the server starts)
        server = Server(config)
        server.run()
    except StartupError as exc:
        return report_startup_error(exc)
    except KeyboardInterrupt:
        return 0
    return 0 if server.started else STARTUP_FAILURE


def serve_app(app: Any, **options: Any) -> int:
    """Build the Config from ``options`` and serve it; the process exit code."""
    try:
        config = Config(app, **options)
    except StartupError as exc:
        return report_startup_error(exc)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    return serve(config)


def run(app: Any, **options: Any) -> None:
    """Serve ``app`` (an ASGI application or an import string) with ``Config`` options."""
    code = serve_app(app, **options)
    if code:
        sys.exit(code)

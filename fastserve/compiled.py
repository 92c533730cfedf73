"""The one loader of compiled twins: ``fastserve._speedups.<name>`` when it is built and wanted.

Every compiled module (``fastserve._speedups``) has a readable twin that the
server runs without it: a build without a C compiler or libnghttp2's headers
falls back quietly, and ``FASTSERVE_NO_EXTENSIONS=1`` asks for the twins. Which
compiled modules serve together (the HTTP/1.1 protocol only with the compiled
``ServerState`` it is typed against, and so on) is said where each is chosen:
``fastserve.protocols`` (HTTP/1.1, HTTP/2's stream layer),
``protocols.websocket_codec`` (WebSocket), ``protocols.http2`` (libnghttp2).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def compiled(name: str) -> ModuleType | None:
    """``fastserve._speedups.<name>``, or None: not built, or FASTSERVE_NO_EXTENSIONS set."""
    if os.environ.get("FASTSERVE_NO_EXTENSIONS"):
        return None
    try:
        return importlib.import_module(f"fastserve._speedups.{name}")
    except ImportError:
        return None

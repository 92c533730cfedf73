"""Wire protocols, and the choice of which implementation serves HTTP/1.1."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fastserve import state as python_state
from fastserve.compiled import compiled
from fastserve.protocols import http1 as python_http1

# The compiled protocols are typed against the compiled ServerState: they serve together or not at all.
compiled_state = compiled("state")
compiled_http1 = compiled("http1") if compiled_state is not None else None
compiled_state = compiled_state if compiled_http1 is not None else None
compiled_http2 = compiled("http2") if compiled_state is not None else None
http1 = compiled_http1 or python_http1
HTTP1Protocol = http1.HTTP1Protocol
# The compiled protocol accepts only the compiled ServerState: always take both from here.
ServerState = (compiled_state or python_state).ServerState
IMPLEMENTATION = "cython" if compiled_http1 is not None else "python"


def httptools_available() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_http(http: str) -> str:
    """The parser that ``--http`` names: 'httptools' or 'h11' ('auto' picks the fast one)."""
    if http == "auto":
        return "httptools" if httptools_available() else "h11"
    return http


def parser_factory(http: str) -> Callable[[Any], Any]:
    """A callable that makes the request parser for one connection (given the protocol)."""
    if resolve_http(http) == "httptools":
        import httptools

        return httptools.HttpRequestParser
    from fastserve.protocols.h11_parser import H11Parser

    return H11Parser


def describe(http: str) -> str:
    """'cython/httptools', 'python/h11', ...: what serves HTTP/1.1."""
    return f"{IMPLEMENTATION}/{resolve_http(http)}"


def describe_http2(engine: str = "auto") -> str:
    """'cython/nghttp2', 'python/h2', ...: the HTTP/2 stream layer in use, and the engine ``--h2-engine`` gives."""
    from fastserve.protocols.http2 import HTTP2Settings

    return f"{'python' if compiled_http2 is None else 'cython'}/{HTTP2Settings(engine_choice=engine).engine_name}"


def build_warnings(http2: bool, h2_engine: str) -> list[str]:
    """What this installation runs as plain Python although nobody asked for it (FASTSERVE_NO_EXTENSIONS).

    Each is one line with its fix: a build without a C compiler, or without
    libnghttp2's headers, falls back quietly at install time (pip hides the
    notice), so the server says it when it starts.
    """
    if os.environ.get("FASTSERVE_NO_EXTENSIONS"):
        return []
    warnings = []
    if compiled_http1 is None:
        warnings.append(
            "HTTP/1.1 is served by the pure-Python protocol (several times slower): fastserve was built without a "
            "C compiler. Install one and Python's headers (Debian/Ubuntu: apt-get install gcc python3-dev) and "
            "reinstall fastserve."
        )
    if http2 and h2_engine == "auto":
        from fastserve.protocols.http2 import HTTP2Settings

        if HTTP2Settings.engine_class.name != "nghttp2":
            warnings.append(
                "HTTP/2 is served by the h2 engine (pure Python, about 10x slower): fastserve was built without "
                "libnghttp2's headers. Install them (Debian/Ubuntu: apt-get install pkg-config libnghttp2-dev) and "
                "reinstall fastserve, or choose h2 with --h2-engine h2."
            )
    return warnings

"""The WebSocket frame codec in use: the compiled twin of ``websocket_frames`` when it was built, else the Python one.

Chosen the way ``fastserve.protocols`` chooses the HTTP/1.1 protocol
(``FASTSERVE_NO_EXTENSIONS=1`` forces the Python one).
"""

from __future__ import annotations

import os

from fastserve.protocols import websocket_frames as python_frames


def _load_compiled() -> object | None:
    if os.environ.get("FASTSERVE_NO_EXTENSIONS"):
        return None
    try:
        from fastserve._speedups import websocket_frames
    except ImportError:
        return None
    return websocket_frames


frames = _load_compiled() or python_frames
FrameReader = frames.FrameReader
build_frame = frames.build_frame
close_payload = frames.close_payload
unmask = frames.unmask
IMPLEMENTATION = "python" if frames is python_frames else "cython"

"""The WebSocket twins in use: compiled ``websocket_frames`` and ``websocket`` when built, else the Python ones.

Loaded by ``fastserve.compiled`` (``FASTSERVE_NO_EXTENSIONS=1`` forces the Python ones).
"""

from __future__ import annotations

from fastserve.compiled import compiled
from fastserve.protocols import websocket_frames as python_frames

frames = compiled("websocket_frames") or python_frames
FrameReader = frames.FrameReader
build_frame = frames.build_frame
frame_header = frames.frame_header
close_payload = frames.close_payload
unmask = frames.unmask
IMPLEMENTATION = "python" if frames is python_frames else "cython"


def connection_protocol() -> type:
    """The WebSocketProtocol class of the build in use (imported late: websocket imports this module).

    The compiled one is typed against the compiled ServerState (its base, cycle.AppCycle, holds it), so it
    serves only beside the compiled HTTP/1.1 protocol.
    """
    from fastserve.protocols import compiled_state

    if IMPLEMENTATION == "cython" and compiled_state is not None:
        protocol = compiled("websocket")
        if protocol is not None:  # (else a partial build: the frames compiled, the protocol not)
            return protocol.WebSocketProtocol
    from fastserve.protocols.websocket import WebSocketProtocol

    return WebSocketProtocol

# The compiled twin of fastserve.protocols.websocket_frames: same classes, same behaviour.
from fastserve.protocols.websocket_frames import FrameReader as FrameReader
from fastserve.protocols.websocket_frames import build_frame as build_frame
from fastserve.protocols.websocket_frames import close_payload as close_payload
from fastserve.protocols.websocket_frames import frame_header as frame_header
from fastserve.protocols.websocket_frames import sendable_close_code as sendable_close_code
from fastserve.protocols.websocket_frames import unmask as unmask

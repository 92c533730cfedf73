# The compiled twin of fastserve.protocols.websocket: same classes, same behaviour.
from fastserve.protocols.websocket import WebSocketProtocol as WebSocketProtocol

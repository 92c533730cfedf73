# The compiled twin of fastserve.protocols.http2: same classes, same behaviour.
from fastserve.protocols.http2 import HTTP2Protocol as HTTP2Protocol

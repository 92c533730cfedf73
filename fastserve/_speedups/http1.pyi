# The compiled twin of fastserve.protocols.http1: same classes, same behaviour.
from fastserve.protocols.http1 import HTTP1Protocol as HTTP1Protocol

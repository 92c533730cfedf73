# The compiled twin of fastserve.protocols.http2_stream: same classes, same behaviour.
from fastserve.protocols.http2_stream import Stream as Stream
from fastserve.protocols.http2_stream import default_header_pairs as default_header_pairs

"""permessage-deflate (RFC 7692): the offer a server accepts, and compression bounded on the way in.

Both WebSocket engines use this one implementation: fastserve's frame reader
calls it directly, the wsproto engine through a wsproto extension. Inflating
is bounded by what the message may still hold, as it inflates: a small
compressed frame that would inflate past ``--ws-max-size`` stops at the limit
(a compression bomb costs the server no more memory than an honest message).
"""

from __future__ import annotations

import zlib

EXTENSION_NAME = b"permessage-deflate"
# Every deflated message ends with an empty stored block that the sender drops (RFC 7692 7.2.1).
MESSAGE_TAIL = b"\x00\x00\xff\xff"
MAX_WINDOW_BITS = 15
# zlib cannot make a raw deflate stream for a window of 256 bytes (it uses 512):
# an offer that asks the server for 8 is declined rather than answered wrongly.
MIN_SERVER_WINDOW_BITS = 9
MIN_CLIENT_WINDOW_BITS = 8
COMPRESSION_LEVEL = 6


class MessageTooBig(Exception):
    """A compressed message inflates past the size limit."""


class PerMessageDeflate:
    """The agreed parameters of one connection, and its compressor and decompressor."""

    def __init__(
        self,
        server_no_context_takeover: bool,
        client_no_context_takeover: bool,
        server_max_window_bits: int,
    ) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        # Made on first use: an idle WebSocket holds no zlib state.
        self.inflater = None
        self.deflater = None

    def inflate(self, payload: bytes, fin: bool, limit: int) -> bytes:
        """A compressed fragment's bytes, inflated; MessageTooBig past ``limit`` bytes."""
        inflater = self.inflater
        if inflater is None:
            # A window of 32 KiB reads what any smaller window made.
            inflater = self.inflater = zlib.decompressobj(wbits=-MAX_WINDOW_BITS)
        try:
            data = inflater.decompress(payload, limit + 1)
            if fin and len(data) <= limit and not inflater.unconsumed_tail:
                data += inflater.decompress(MESSAGE_TAIL, limit + 1 - len(data))
        except zlib.error as exc:
            raise ValueError(f"invalid compressed data: {exc}") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise MessageTooBig
        if fin and self.client_no_context_takeover:
            self.inflater = None
        return data

    def deflate(self, data: bytes) -> bytes:
        """One whole message's payload, compressed."""
        deflater = self.deflater
        if deflater is None:
            deflater = self.deflater = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -self.server_max_window_bits)
        compressed = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
        if self.server_no_context_takeover:
            self.deflater = None
        if compressed.endswith(MESSAGE_TAIL):
            compressed = compressed[: -len(MESSAGE_TAIL)]
        return compressed


def negotiate(offers: list[bytes]) -> tuple[PerMessageDeflate | None, bytes | None]:
    """The first permessage-deflate offer the server can honour: its state, and the response header value.

    ``offers`` are the Sec-WebSocket-Extensions list items. An offer with
    unknown, repeated or invalid parameters is declined, and the next one
    considered (RFC 7692 5).
    """
    for offer in offers:
        name, *params = (part.strip(b" \t") for part in offer.split(b";"))
        if name.lower() != EXTENSION_NAME:
            continue
        accepted = _accept(params)
        if accepted is not None:
            return accepted
    return None, None


def _accept(params: list[bytes]) -> tuple[PerMessageDeflate, bytes] | None:
    seen: dict[bytes, bytes | None] = {}
    for param in params:
        key, _, value = param.partition(b"=")
        key = key.strip(b" \t").lower()
        value = value.strip(b" \t").strip(b'"')
        if key in seen or key not in (
            b"server_no_context_takeover",
            b"client_no_context_takeover",
            b"server_max_window_bits",
            b"client_max_window_bits",
        ):
            return None
        seen[key] = value or None
    if b"server_no_context_takeover" in seen and seen[b"server_no_context_takeover"] is not None:
        return None
    if b"client_no_context_takeover" in seen and seen[b"client_no_context_takeover"] is not None:
        return None
    response = [EXTENSION_NAME]
    server_bits = MAX_WINDOW_BITS
    if b"server_max_window_bits" in seen:
        server_bits = _window_bits(seen[b"server_max_window_bits"], MIN_SERVER_WINDOW_BITS)
        if server_bits is None:
            return None
        response.append(b"server_max_window_bits=%d" % server_bits)
    if b"client_max_window_bits" in seen:
        value = seen[b"client_max_window_bits"]
        if value is not None:
            client_bits = _window_bits(value, MIN_CLIENT_WINDOW_BITS)
            if client_bits is None:
                return None
            response.append(b"client_max_window_bits=%d" % client_bits)
    server_no_context = b"server_no_context_takeover" in seen
    client_no_context = b"client_no_context_takeover" in seen
    if server_no_context:
        response.append(b"server_no_context_takeover")
    if client_no_context:
        response.append(b"client_no_context_takeover")
    return PerMessageDeflate(server_no_context, client_no_context, server_bits), b"; ".join(response)


def _window_bits(value: bytes | None, minimum: int) -> int | None:
    if value is None or not value.isdigit() or len(value) > 2:
        return None
    bits = int(value)
    return bits if minimum <= bits <= MAX_WINDOW_BITS else None

"""permessage-deflate: the offers the server accepts, and inflating bounded by the size limit."""

from __future__ import annotations

import zlib

import pytest

from fastserve.protocols.websocket_deflate import MessageTooBig, negotiate


@pytest.mark.parametrize(
    ("offers", "response"),
    [
        ([b"permessage-deflate"], b"permessage-deflate"),
        ([b"permessage-deflate; client_max_window_bits"], b"permessage-deflate"),
        (
            [b"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"],
            b"permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
        ),
        ([b"permessage-deflate; server_max_window_bits=12"], b"permessage-deflate; server_max_window_bits=12"),
        ([b"permessage-deflate; client_no_context_takeover"], b"permessage-deflate; client_no_context_takeover"),
        # Declined offers: unknown or repeated parameters, bad values, a window zlib cannot make; then the next.
        ([b"permessage-deflate; foo", b"permessage-deflate"], b"permessage-deflate"),
        ([b"permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
        ([b"permessage-deflate; server_max_window_bits=8"], None),
        ([b"permessage-deflate; server_max_window_bits"], None),
        ([b"permessage-deflate; client_max_window_bits=16"], None),
        ([b"x-webkit-deflate-frame"], None),
    ],
)
def test_negotiation(offers, response):
    deflate, header = negotiate(offers)
    assert header == response
    assert (deflate is None) == (response is None)


@pytest.mark.parametrize("context_takeover", [True, False])
def test_round_trip_with_and_without_context_takeover(context_takeover):
    offer = b"permessage-deflate" + (b"" if context_takeover else b"; server_no_context_takeover")
    deflate, _ = negotiate([offer])
    client = zlib.decompressobj(wbits=-15)
    for message in (b"hello " * 100, b"hello " * 100, b"other"):
        data = client.decompress(deflate.deflate(message) + b"\x00\x00\xff\xff")
        assert data == message
        if not context_takeover:
            client = zlib.decompressobj(wbits=-15)


def test_inflating_stops_at_the_limit():
    deflate, _ = negotiate([b"permessage-deflate"])
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
    with pytest.raises(MessageTooBig):
        deflate.inflate(bomb, True, 1 << 20)

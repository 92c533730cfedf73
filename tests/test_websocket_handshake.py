"""The WebSocket opening handshake checks (RFC 6455 4.2.1), on parsed request heads."""

from __future__ import annotations

import pytest

from fastserve.protocols.websocket_handshake import (
    HandshakeError,
    accept_key,
    check_handshake,
    names_websocket,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
VALID = [
    (b"host", b"example.com"),
    (b"upgrade", b"WebSocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-protocol", b"chat, superchat"),
    (b"sec-websocket-protocol", b"v2.json"),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
]


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(key, value) for key, value in VALID if key != name]


def replaced(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [*without(name), (name, value)]


def test_the_rfc_example_key_and_a_valid_handshake():
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3
    handshake = check_handshake("GET", "1.1", VALID)
    assert handshake.key == KEY
    assert handshake.subprotocols == ["chat", "superchat", "v2.json"]
    assert handshake.extensions == [b"permessage-deflate; client_max_window_bits"]
    assert names_websocket(dict(VALID)[b"upgrade"])
    assert not names_websocket(dict(replaced(b"upgrade", b"h2c"))[b"upgrade"])


@pytest.mark.parametrize(
    ("method", "version", "headers", "status"),
    [
        ("POST", "1.1", VALID, 400),
        ("GET", "1.0", VALID, 400),
        ("GET", "1.1", without(b"connection"), 400),
        ("GET", "1.1", replaced(b"connection", b"keep-alive"), 400),
        ("GET", "1.1", without(b"sec-websocket-key"), 400),
        ("GET", "1.1", replaced(b"sec-websocket-key", b"not base64!"), 400),
        ("GET", "1.1", replaced(b"sec-websocket-key", b"c2hvcnQ="), 400),  # 5 bytes, not 16
        ("GET", "1.1", [*VALID, (b"sec-websocket-key", KEY)], 400),  # two keys
        ("GET", "1.1", without(b"sec-websocket-version"), 426),
        ("GET", "1.1", replaced(b"sec-websocket-version", b"8"), 426),
        ("GET", "1.1", [*VALID, (b"sec-websocket-version", b"13")], 426),  # two versions
    ],
)
def test_invalid_handshakes_are_refused(method, version, headers, status):
    with pytest.raises(HandshakeError) as caught:
        check_handshake(method, version, headers)
    assert caught.value.status == status
    if status == 426:
        assert caught.value.headers == [(b"sec-websocket-version", b"13")]

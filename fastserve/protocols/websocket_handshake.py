"""The WebSocket opening handshake (RFC 6455 4.2), checked on a parsed HTTP/1.1 request head.

The HTTP/1.1 protocol has parsed the request already; ``check_handshake``
decides from its method, version and headers whether it is a valid WebSocket
handshake, and ``accept_key`` answers its key. A request that asks to upgrade
to WebSocket and gets it wrong is refused with 400, or 426 naming the one
version spoken, and never reaches the app.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable

from fastserve.errors import RequestError

# RFC 6455 1.3: appended to the client's key before hashing.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION = b"13"


class HandshakeError(RequestError):
    """A WebSocket handshake refused: the status, and headers for the answer (426 names the version)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(status, reason)
        self.headers = headers or []

    def header_lines(self) -> bytes:
        return b"".join(b"%s: %s\r\n" % pair for pair in self.headers)


class Handshake:
    """What a valid handshake asks for: the key to answer, and the subprotocols offered, in order."""

    __slots__ = ("key", "subprotocols", "extensions")

    def __init__(self, key: bytes, subprotocols: list[str], extensions: list[bytes]) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions


def tokens(values: Iterable[bytes]) -> list[bytes]:
    """The comma-separated list items of header values, lowercased and trimmed (RFC 9110 5.6.1)."""
    items = []
    for value in values:
        for item in value.split(b","):
            item = item.strip(b" \t")
            if item:
                items.append(item)
    return items


def names_token(value: bytes, token: bytes) -> bool:
    """Whether a comma-separated field value has ``token`` (lowercase) among its items, in any case."""
    return any(item.lower() == token for item in tokens([value]))


def names_websocket(upgrade: bytes) -> bool:
    """Whether an Upgrade field's value asks to switch to WebSocket (the handshake may still be invalid)."""
    return names_token(upgrade, b"websocket")


def check_handshake(method: str, http_version: str, headers: list[tuple[bytes, bytes]]) -> Handshake:
    """The handshake a request that asks for WebSocket makes; a HandshakeError when it is not valid.

    ``headers`` are the request's, names lowercased, as the HTTP/1.1 protocol
    keeps them.
    """
    if method != "GET":
        raise HandshakeError(400, "WebSocket handshake with a method other than GET")
    if http_version != "1.1":
        raise HandshakeError(400, "WebSocket handshake over HTTP/1.0")
    connection = [item.lower() for item in tokens(value for name, value in headers if name == b"connection")]
    if b"upgrade" not in connection:
        raise HandshakeError(400, "WebSocket handshake without 'Connection: upgrade'")
    versions = [value.strip(b" \t") for name, value in headers if name == b"sec-websocket-version"]
    if versions != [VERSION]:
        raise HandshakeError(426, "WebSocket version other than 13", [(b"sec-websocket-version", VERSION)])
    keys = [value.strip(b" \t") for name, value in headers if name == b"sec-websocket-key"]
    if len(keys) != 1 or not valid_key(keys[0]):
        raise HandshakeError(400, "Missing or invalid Sec-WebSocket-Key")
    subprotocols = [
        item.decode("latin-1") for item in tokens(value for name, value in headers if name == b"sec-websocket-protocol")
    ]
    extensions = tokens(value for name, value in headers if name == b"sec-websocket-extensions")
    return Handshake(keys[0], subprotocols, extensions)


def valid_key(key: bytes) -> bool:
    """A Sec-WebSocket-Key is 16 bytes in base64 (RFC 6455 4.1)."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept value answering ``key``."""
    return base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())

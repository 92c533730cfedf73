"""HTTP/1.1 handing its connection over: to a WebSocket session, or to HTTP/2 (h2c upgrade, prior knowledge, ALPN).

A request that asks to switch protocols is checked when its head is in
(``await_switch_to_websocket``, ``await_switch_to_http2``: an invalid one is
refused); the parser stops after it (``protocol_switch``), requests pipelined
before it are answered, and then the connection goes to the new protocol with
the bytes read behind the request (``switch_protocols``, ``hand_over``).

Functions of the connection (``http1.HTTP1Protocol``), which calls them at
most once per connection: plain Python, never compiled.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import TYPE_CHECKING, Any

from fastserve.errors import RequestError
from fastserve.protocols.websocket import websocket_scope
from fastserve.protocols.websocket_handshake import HandshakeError, check_handshake, names_token

if TYPE_CHECKING:
    from fastserve.protocols.http1 import HTTP1Protocol

    Buffer = bytes | bytearray | memoryview

error_logger = logging.getLogger("fastserve.error")

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2C_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
# What a connection may switch to (HTTP1Protocol.upgrade_to).
WEBSOCKET = "websocket"
H2C = "h2c"
BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


def http2_settings_valid(value: bytes) -> bool:
    """Whether an HTTP2-Settings value is a SETTINGS payload in base64url, unpadded (RFC 7540 3.2.1)."""
    if not BASE64URL.fullmatch(value):
        return False
    return len(base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))) % 6 == 0


def take_http2_preface(conn: HTTP1Protocol, data: Buffer) -> Buffer | None:
    """What of the connection's first bytes is HTTP/1.1 to parse; None if they are the HTTP/2 preface so far.

    The whole preface hands the connection to HTTP/2 (h2c with prior
    knowledge); a part of it is kept until more comes.
    """
    kept = conn.preface_bytes
    seen = kept + bytes(data) if kept else bytes(data[: len(HTTP2_PREFACE)])
    if seen[: len(HTTP2_PREFACE)] != HTTP2_PREFACE[: len(seen)]:
        conn.preface_bytes = b""
        return seen if kept else data
    if len(seen) < len(HTTP2_PREFACE):
        conn.preface_bytes = seen
        return None
    conn.preface_bytes = b""
    switch_to_http2(conn, kept + bytes(data))
    return None


def await_switch_to_websocket(conn: HTTP1Protocol, method: str, version: str) -> None:
    """A WebSocket handshake: checked now (an invalid one is refused), switched to when its turn comes.

    The parser stops after this request (see protocol_switch); requests
    pipelined before it are answered first (see cycle_done).
    """
    if conn.body_left:
        raise HandshakeError(400, "WebSocket handshake with a body")
    handshake = check_handshake(method, version, conn.headers)
    scope = websocket_scope(conn.build_scope(method, version, True), handshake, conn.tls)
    conn.upgrade_to = (WEBSOCKET, scope, handshake)
    conn.release_head()


def await_switch_to_http2(conn: HTTP1Protocol, method: str, version: str) -> bool:
    """Whether this is an ``Upgrade: h2c`` to take up (RFC 7540 3.2): checked now, switched to in its turn.

    Only a bodiless HTTP/1.1 request on a cleartext connection is taken up;
    any other is answered as HTTP/1.1 (which the RFC allows). One asking to
    upgrade without exactly one valid HTTP2-Settings, named in Connection,
    is refused with 400.
    """
    headers = conn.headers
    if not any(name == b"upgrade" and names_token(value, b"h2c") for name, value in headers):
        return False
    if conn.tls is not None or version != "1.1" or conn.body_left:
        return False
    settings = [value for name, value in headers if name == b"http2-settings"]
    connection_names_it = any(
        name == b"connection" and names_token(value, b"http2-settings") for name, value in headers
    )
    if len(settings) != 1 or not connection_names_it or not http2_settings_valid(settings[0]):
        raise RequestError(400, "Invalid h2c upgrade: one HTTP2-Settings header, named in Connection")
    conn.upgrade_to = (H2C, conn.build_scope(method, version, True), settings[0])
    conn.release_head()
    return True


def protocol_switch(conn: HTTP1Protocol, rest: bytes) -> None:
    """The parser stopped after a request that asks to switch protocols; ``rest`` is what followed it."""
    conn.parser = None
    if conn.upgrade_to is None:
        return  # a switch not taken up: the request is answered as plain HTTP, then the connection closes
    conn.upgrade_bytes = rest
    if conn.cycle is None:
        switch_protocols(conn)
    else:
        conn.pause_reading()


def switch_protocols(conn: HTTP1Protocol) -> None:
    """Hand the connection to the protocol asked for (its request's turn has come), with the bytes after it.

    A WebSocketProtocol gets the handshake's scope; HTTP/2 (h2c) gets the
    upgrading request as its stream 1, after the 101 that says so.
    """
    kind, scope, detail = conn.upgrade_to
    rest = conn.upgrade_bytes
    conn.upgrade_to = None
    conn.upgrade_bytes = b""
    state = conn.state
    if kind == H2C:
        conn.write(H2C_SWITCHING)
        protocol = state.http2.protocol(
            state, conn.server, conn.client, conn.scheme, conn.tls, conn.client_label, (scope, detail)
        )
    else:
        protocol = state.websocket.protocol(state, scope, detail, conn.client_label)
    hand_over(conn, protocol, rest)


def switch_to_http2(conn: HTTP1Protocol, early_bytes: bytes) -> None:
    """Hand the connection to HTTP/2: it began with the preface (``early_bytes``), or ALPN chose h2."""
    state = conn.state
    hand_over(
        conn,
        state.http2.protocol(state, conn.server, conn.client, conn.scheme, conn.tls, conn.client_label),
        early_bytes,
    )


def hand_over(conn: HTTP1Protocol, protocol: Any, early_bytes: bytes) -> None:
    """Give the transport to the next protocol, with the bytes read that are its."""
    conn.flush()  # (responses to requests pipelined before the switch go first)
    if conn.flush_handle is not None:
        conn.flush_handle.cancel()
        conn.flush_handle = None
    conn.parser = None
    conn.parser_asleep = False
    conn.closed = True  # this protocol is done with the connection
    conn.deadline = 0.0
    conn.state.connections.discard(conn)
    transport = conn.transport
    transport.set_protocol(protocol)
    protocol.start(transport, conn.read_paused, early_bytes)


def log_upgrade_not_taken(conn: HTTP1Protocol) -> None:
    """An Upgrade the server does not take up is answered as plain HTTP/1.1 (RFC 9110 7.8).

    Only a WebSocket upgrade with --ws none is worth a warning: a client
    offering h2c (``curl --http2``) without --h2c-upgrade, or a protocol the
    server does not speak, simply goes on in HTTP/1.1.
    """
    if conn.websocket_upgrade:
        error_logger.warning(
            "WebSocket upgrade request from %s answered as plain HTTP: WebSockets are off (--ws none)",
            conn.client_label,
        )
    else:
        error_logger.debug("Upgrade request from %s not taken up: answered in HTTP/1.1", conn.client_label)

"""HAProxy's PROXY protocol (v1 text and v2 binary), read before HTTP with ``--proxy-protocol``.

A load balancer that speaks it (HAProxy, AWS NLB, nginx's ``proxy_protocol``)
starts every connection with a header naming the client's address. The gate
here reads that header, then hands the connection to the HTTP protocol with
the addresses it names. A connection from an address not in
``--proxy-allow-from``, or one that does not start with a valid header, is
closed: a server behind such a balancer must never take a client's word for
where it is.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ipaddress
import logging
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastserve.protocols.http1 import FIRST_REQUEST_GRACE
from fastserve.sockets import socket_address

logger = logging.getLogger("fastserve.error")

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # the longest valid v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = struct.Struct("!12sBBH")
V2_ADDRESSES = {0x1: (struct.Struct("!4s4sHH"), 4), 0x2: (struct.Struct("!16s16sHH"), 16)}
V2_UNIX_ADDRESS_LENGTH = 216
PP2_TYPE_SSL = 0x20
PP2_CLIENT_SSL = 0x01

Address = tuple[str, int]


class ProxyProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class ProxyHeader:
    """What a PROXY header said; ``client``/``server`` are None when it names no addresses (LOCAL, UNKNOWN)."""

    length: int
    client: Address | None = None
    server: Address | None = None
    tls: bool = False


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``, or None while more bytes are needed."""
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    raise ProxyProtocolError("the connection does not start with a PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V1_PREFIX[: len(data)]):
        raise ProxyProtocolError("not a PROXY v1 header")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError("PROXY v1 header too long")
        return None
    fields = data[:end].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return ProxyHeader(end + 2)
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError("malformed PROXY v1 header")
    version = 4 if fields[1] == b"TCP4" else 6
    client = (_ip(fields[2], version), _port(fields[4]))
    server = (_ip(fields[3], version), _port(fields[5]))
    return ProxyHeader(end + 2, client, server)


def _ip(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError("bad address in PROXY header") from None
    if address.version != version:
        raise ProxyProtocolError("address family does not match the PROXY header")
    return str(address)


def _port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0") or int(text) > 65535:
        raise ProxyProtocolError("bad port in PROXY header")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V2_SIGNATURE[: len(data)]):
        raise ProxyProtocolError("not a PROXY v2 header")
    if len(data) < V2_HEADER.size:
        return None
    _, version_command, family, length = V2_HEADER.unpack_from(data)
    if version_command >> 4 != 2:
        raise ProxyProtocolError("unsupported PROXY protocol version")
    command = version_command & 0x0F
    if command not in (0, 1):
        raise ProxyProtocolError("unknown PROXY v2 command")
    total = V2_HEADER.size + length
    if len(data) < total:
        return None
    body = data[V2_HEADER.size : total]
    address_family, transport = family >> 4, family & 0x0F
    if command == 0 or address_family == 0:
        # LOCAL (the balancer's own health check) or UNSPEC: the connection's real addresses stand.
        return ProxyHeader(total)
    if transport != 1:
        raise ProxyProtocolError("PROXY v2 header for a transport other than a stream")
    if address_family == 0x3:
        if length < V2_UNIX_ADDRESS_LENGTH:
            raise ProxyProtocolError("PROXY v2 header shorter than its addresses")
        return ProxyHeader(total, tls=_tls_from_tlvs(body[V2_UNIX_ADDRESS_LENGTH:]))
    if address_family not in V2_ADDRESSES:
        raise ProxyProtocolError("unknown PROXY v2 address family")
    layout, _ = V2_ADDRESSES[address_family]
    if length < layout.size:
        raise ProxyProtocolError("PROXY v2 header shorter than its addresses")
    source, destination, source_port, destination_port = layout.unpack_from(body)
    client = (str(ipaddress.ip_address(source)), source_port)
    server = (str(ipaddress.ip_address(destination)), destination_port)
    return ProxyHeader(total, client, server, _tls_from_tlvs(body[layout.size :]))


def _tls_from_tlvs(tlvs: bytes) -> bool:
    """Whether the TLVs say the client spoke TLS to the balancer (PP2_TYPE_SSL with PP2_CLIENT_SSL)."""
    tls = False
    offset = 0
    while offset < len(tlvs):
        if offset + 3 > len(tlvs):
            raise ProxyProtocolError("truncated PROXY v2 TLV")
        kind, size = tlvs[offset], int.from_bytes(tlvs[offset + 1 : offset + 3], "big")
        value = tlvs[offset + 3 : offset + 3 + size]
        if len(value) != size:
            raise ProxyProtocolError("truncated PROXY v2 TLV")
        if kind == PP2_TYPE_SSL and value[:1] and value[0] & PP2_CLIENT_SSL:
            tls = True
        offset += 3 + size
    return tls


class ProxyProtocolGate(asyncio.Protocol):
    """The protocol of a connection until its PROXY header is read; then the HTTP protocol takes over."""

    def __init__(
        self,
        state: Any,
        make_protocol: Callable[[], Any],
        allowed: Any,
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
    ) -> None:
        self.state = state
        self.make_protocol = make_protocol
        self.allowed = allowed
        self.ssl_context = ssl_context
        self.ssl_handshake_timeout = ssl_handshake_timeout
        self.transport: Any = None
        self.received = b""
        self.deadline = 0.0
        self.closed = False
        self.peer: Address | None = None
        self.sockname: Address | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.peer = socket_address(transport.get_extra_info("peername"))
        self.sockname = socket_address(transport.get_extra_info("sockname"))
        if not self.allowed.trusts_peer(self.peer):
            peer = "a Unix socket" if self.peer is None else f"{self.peer[0]}:{self.peer[1]}"
            logger.warning("Closed a connection from %s: not allowed to send PROXY headers", peer)
            self.close()
            return
        self.state.connections.add(self)
        # The header comes first and is short: it gets the keep-alive time, not the whole header timeout.
        self.deadline = self.state.now + self.state.timeout_keep_alive
        if self.state.shutting_down:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.received += data
        try:
            header = parse(self.received)
        except ProxyProtocolError as exc:
            logger.warning("Closed a connection with an invalid PROXY header: %s", exc)
            self.close()
            return
        if header is not None:
            self.hand_over(header, self.received[header.length :])

    def hand_over(self, header: ProxyHeader, rest: bytes) -> None:
        transport = self.transport
        self.state.connections.discard(self)
        self.closed = True
        protocol = self.make_protocol()
        if header.client is not None or header.tls:
            protocol.proxied = (
                header.server or self.sockname,
                header.client or self.peer,
                "https" if header.tls else None,
            )
        if self.ssl_context is not None:
            # TLS begins after the PROXY header: the same layer the loop's own TLS servers use.
            protocol = asyncio.sslproto.SSLProtocol(
                self.state.loop,
                protocol,
                self.ssl_context,
                None,
                server_side=True,
                ssl_handshake_timeout=self.ssl_handshake_timeout,
            )
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest:
            _deliver(protocol, rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)

    def check_deadline(self, now: float) -> None:
        if self.deadline and now >= self.deadline:
            self.close()

    def shutdown(self) -> None:
        # As for a new HTTP connection: the balancer opened it to send a request, which gets answered.
        limit = self.state.loop.time() + FIRST_REQUEST_GRACE
        if self.deadline == 0.0 or self.deadline > limit:
            self.deadline = limit

    def close(self) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if self.transport is not None:
            self.transport.close()


def _deliver(protocol: Any, data: bytes) -> None:
    """Bytes read past the PROXY header, to a protocol that may be a BufferedProtocol (TLS)."""
    if not hasattr(protocol, "get_buffer"):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]

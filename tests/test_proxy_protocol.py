"""--proxy-protocol: HAProxy's PROXY v1 and v2 headers before HTTP, valid and malformed."""

from __future__ import annotations

import ipaddress
import json
import signal
import ssl
import struct

import pytest

from fastserve.protocols.proxy_protocol import ProxyHeader, ProxyProtocolError, parse
from tests.apps import scope_app
from tests.conftest import client_context, closed_after, read_response, recv_all, wait_for


@pytest.fixture
def http() -> str:
    """What these tests check happens before or beside parsing: one parser is enough."""
    return "httptools"


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int = 1, family: int = 0x11, body: bytes | None = None, tlvs: bytes = b"") -> bytes:
    if body is None:
        body = struct.pack("!4s4sHH", bytes([203, 0, 113, 7]), bytes([10, 0, 0, 1]), 51000, 443)
    body += tlvs
    return SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(body)) + body


def v2_ipv6() -> bytes:
    source = ipaddress.ip_address("2001:db8::7").packed
    destination = ipaddress.ip_address("2001:db8::1").packed
    return v2(family=0x21, body=struct.pack("!16s16sHH", source, destination, 4711, 80))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET",
            ProxyHeader(43, ("203.0.113.7", 51000), ("10.0.0.1", 443)),
        ),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 80\r\n",
            ProxyHeader(44, ("2001:db8::7", 4711), ("2001:db8::1", 80)),
        ),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", ProxyHeader(35)),
        (b"PROXY UNKNOWN\r\n", ProxyHeader(15)),
        (v2(), ProxyHeader(28, ("203.0.113.7", 51000), ("10.0.0.1", 443))),
        (v2_ipv6(), ProxyHeader(52, ("2001:db8::7", 4711), ("2001:db8::1", 80))),
        (v2(command=0), ProxyHeader(28)),  # LOCAL: a health check from the balancer
        (
            v2(tlvs=b"\x20\x00\x05\x01\x00\x00\x00\x00"),
            ProxyHeader(36, ("203.0.113.7", 51000), ("10.0.0.1", 443), True),
        ),
        (b"PROXY TCP4 203.0.113.7", None),  # more to come
        (SIGNATURE[:7], None),
        (v2()[:20], None),
    ],
)
def test_parse_valid_and_partial_headers(data, expected):
    assert parse(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n",
        b"PROXY TCP4 2001:db8::7 10.0.0.1 51000 443\r\n",  # family mismatch
        b"PROXY TCP4 203.0.113.7 10.0.0.1 99999 443\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 0443 443\r\n",
        b"PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 " + b"1" * 120,  # no line end within the longest header
        b"PROXZ",
        SIGNATURE[:5] + b"x",
        SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12),  # version 1 in a v2 header
        SIGNATURE + bytes([0x2F, 0x11, 0, 12]) + bytes(12),  # unknown command
        SIGNATURE + bytes([0x21, 0x12, 0, 12]) + bytes(12),  # datagram
        SIGNATURE + bytes([0x21, 0x11, 0, 4]) + bytes(4),  # shorter than its addresses
        v2(tlvs=b"\x20\x00\x09\x01"),  # truncated TLV
    ],
)
def test_parse_refuses_malformed_headers(data):
    with pytest.raises(ProxyProtocolError):
        parse(data)


def request_through(server, header: bytes, request: bytes = REQUEST) -> dict:
    with server.connect() as sock:
        sock.sendall(header + request)
        status, _, body = read_response(sock)
    assert status == 200
    return json.loads(body)


def test_v1_and_v2_headers_name_the_client(serve):
    with serve(scope_app, proxy_protocol=True) as server:
        scope = request_through(server, b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n")
        assert scope["client"] == ["203.0.113.7", 51000] and scope["server"] == ["10.0.0.1", 443]
        scope = request_through(server, v2_ipv6())
        assert scope["client"] == ["2001:db8::7", 4711] and scope["scheme"] == "http"
        scope = request_through(server, v2(tlvs=b"\x20\x00\x05\x01\x00\x00\x00\x00"))
        assert scope["scheme"] == "https"  # the client spoke TLS to the balancer
        scope = request_through(server, v2(command=0))
        assert scope["client"][0] == "127.0.0.1"  # LOCAL keeps the real peer
        # The header in its own packet, and the request after it.
        with server.connect() as sock:
            sock.sendall(b"PROXY TCP4 203.0.113.7 10.0.")
            sock.sendall(b"0.1 51000 443\r\n")
            sock.sendall(REQUEST + REQUEST)
            assert json.loads(read_response(sock)[2])["client"] == ["203.0.113.7", 51000]
            assert json.loads(read_response(sock)[2])["client"] == ["203.0.113.7", 51000]


def test_proxy_headers_after_a_proxy_protocol_header_trust_the_named_client(serve):
    with serve(scope_app, proxy_protocol=True) as server:
        spoofed = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
        scope = request_through(server, b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n", spoofed)
        assert scope["client"] == ["203.0.113.7", 51000]  # 203.0.113.7 is no trusted proxy
        scope = request_through(server, b"PROXY TCP4 127.0.0.1 10.0.0.1 51000 443\r\n", spoofed)
        assert scope["client"] == ["6.6.6.6", 0]


@pytest.mark.parametrize(
    "data",
    [REQUEST, b"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n" + REQUEST, SIGNATURE + b"\x21\x11\x00\x02xx" + REQUEST],
)
def test_connection_without_a_valid_header_is_closed(serve, data):
    with serve(scope_app, proxy_protocol=True) as server:
        with server.connect() as sock:
            sock.sendall(data)
            assert recv_all(sock) == b""
        assert request_through(server, b"PROXY UNKNOWN\r\n")["client"][0] == "127.0.0.1"


def test_connection_from_an_address_not_allowed_is_closed(serve):
    with serve(scope_app, proxy_protocol=True, proxy_allow_from="10.0.0.0/8") as server:
        with server.connect() as sock:
            sock.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n" + REQUEST)
            try:
                answer = recv_all(sock)
            except ConnectionResetError:
                answer = b""  # closed at once, with the request unread: the kernel resets
            assert answer == b""


def test_silent_connection_is_closed(serve):
    with serve(scope_app, proxy_protocol=True, timeout_keep_alive=2) as server:
        with server.connect() as sock:
            data, waited = closed_after(sock)
    assert data == b"" and 0.9 <= waited <= 4.0  # (the sweep's clock is a second coarse)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_proxy_header_before_tls(serve, ca, server_files, loop):
    """A balancer passing TLS through sends the PROXY header in the clear, then the client's handshake."""
    options = {"proxy_protocol": True, "ssl_certfile": server_files["certfile"], "ssl_keyfile": server_files["keyfile"]}
    options["loop"] = loop
    with serve(scope_app, **options) as server:
        for header in (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n", v2()):
            with server.connect() as raw:
                raw.sendall(header)
                with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    sock.sendall(REQUEST)
                    status, _, body = read_response(sock)
            scope = json.loads(body)
            assert status == 200 and scope["scheme"] == "https"
            assert scope["client"] == ["203.0.113.7", 51000]
            assert scope["extensions"]["tls"]["tls_version"] == 0x0304
        # Without the header, the handshake itself is refused.
        with server.connect() as raw, pytest.raises((ssl.SSLError, OSError)):
            client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1")


def test_shutdown_answers_a_connection_still_waiting_for_its_proxy_header(serve):
    with serve(scope_app, proxy_protocol=True) as server:
        sock = server.connect()
        wait_for(lambda: len(server.state.connections) == 1)
        server.call(server.server.handle_exit, signal.SIGTERM)
        wait_for(lambda: server.state.shutting_down)
        sock.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n" + REQUEST)
        status, headers, body = read_response(sock)
        assert (status, headers[b"connection"]) == (200, b"close")
        assert json.loads(body)["client"] == ["203.0.113.7", 51000]
        sock.close()
        server.thread.join(10)
        assert not server.thread.is_alive()

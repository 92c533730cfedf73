"""Malformed and hostile requests get a clear status and a closed connection."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.apps import echo
from tests.conftest import closed_after, recv_all

REQUESTS = {
    "garbage": (b"\x00\x01\x02garbage\r\n\r\n", 400),
    "bad method": (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "lowercase version": (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    "HTTP/2.0": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "HTTP/1.2": (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    "HTTP/3.0": (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    "HTTP/0.9": (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 400),
    "no version": (b"GET /\r\nHost: x\r\n\r\n", 400),
    # (The HTTP/2 preface itself starts HTTP/2: tests/test_http2.py.)
    "PRI-not-the-preface": (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 400),
    "missing Host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two Host headers": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "CL and TE": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "TE and CL": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    "duplicate CL": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    "conflicting CL": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    "CL list": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    "CL not a number": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\nabc", 400),
    "negative CL": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    "TE gzip": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400),
    "TE gzip, chunked": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    "TE chunked, gzip": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    "TE xchunked": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    "two TE headers": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "TE on HTTP/1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad chunk size": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    "bad chunk terminator": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        400,
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    "obs-fold with tab": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400),
    "bare CR": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "bare LF": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "bare LF in headers": (b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", 400),
    "NUL in value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "header without colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", 400),
    "empty header name": (b"GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", 400),
    "control byte in target": (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "space in target": (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "unsupported expectation": (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417),
}


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def assert_still_serving(server) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        response = recv_all(sock)
    assert status_of(response) == 200 and response.endswith(b"\r\n\r\nok")


@pytest.mark.parametrize("name", list(REQUESTS))
def test_malformed_request(serve, name):
    request, expected = REQUESTS[name]
    with serve(echo) as server:
        with server.connect() as sock:
            sock.sendall(request)
            response = recv_all(sock)  # returns only once the server closed
        assert status_of(response) == expected
        assert b"connection: close\r\n" in response
        assert response.count(b"HTTP/1.1 ") == 1
        assert_still_serving(server)


def test_pipelined_bad_request_after_good_ones(serve):
    good = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
    with serve(echo) as server, server.connect() as sock:
        sock.sendall(good + good + b"GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n" + good)
        response = recv_all(sock)
    statuses = [int(part.split(b" ", 1)[0]) for part in response.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 200, 400]


@pytest.mark.parametrize(
    ("options", "request_bytes", "expected"),
    [
        ({}, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ({"limit_request_line": 100}, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ({}, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 101 + b"\r\n", 431),
        ({"limit_request_fields": 5}, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 5 + b"\r\n", 431),
        ({}, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
        ({"limit_request_field_size": 100}, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100 + b"\r\n\r\n", 431),
        (
            {"limit_request_fields": 4, "limit_request_field_size": 1000, "limit_request_line": 1000},
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 60000,
            431,
        ),
    ],
    ids=["line-default", "line-flag", "fields-default", "fields-flag", "size-default", "size-flag", "endless-head"],
)
def test_limits(serve, options, request_bytes, expected):
    with serve(echo, **options) as server:
        with server.connect() as sock:
            sock.sendall(request_bytes)
            response = recv_all(sock)
        assert status_of(response) == expected
        assert_still_serving(server)


def test_limits_at_the_boundary_pass(serve):
    with serve(echo, limit_request_line=100, limit_request_fields=5, limit_request_field_size=100) as server:
        with server.connect() as sock:
            target = b"/" + b"a" * 99
            headers = b"Host: x\r\n" + b"X-A: " + b"a" * 95 + b"\r\n" + b"X-B: b\r\n" * 2 + b"Connection: close\r\n"
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\n" + headers + b"\r\n")
            assert status_of(recv_all(sock)) == 200


def test_tls_handshake_on_the_plain_port_is_refused_at_once_and_said_so(serve, caplog):
    """A client speaking https:// to a server without TLS: 400 at once (not the header timeout), and why."""
    client_hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\x00\x00\x02\x13\x01"
    with serve(echo, timeout_request_header=30) as server:
        with server.connect() as sock:
            sock.sendall(client_hello)
            response, waited = closed_after(sock)
    assert status_of(response) == 400 and waited < 5
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warnings == [
        "Invalid HTTP request received: a TLS handshake on a plain HTTP port (https:// to a server without TLS)"
    ]


def test_error_answer_reaches_a_client_still_sending(serve):
    """A refused request whose client goes on sending (an endless head): the 431 is read whole, not lost to a
    reset. The server ends its output, drops what still comes, and closes when the client does (lingering).
    (Closing at once loses the answer in a race: a few rounds make that race show.)"""
    with serve(echo) as server:
        for _ in range(5):
            with server.connect() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)

                def keep_sending(sock: socket.socket = sock) -> None:
                    try:
                        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 8_000_000)
                    except OSError:
                        pass  # (the server closed at the end of its lingering)

                sender = threading.Thread(target=keep_sending, daemon=True)
                sender.start()
                response = recv_all(sock)  # raises ConnectionResetError if a reset took the answer
                sender.join(10)
            assert response.startswith(b"HTTP/1.1 431 ") and response.endswith(b"Request Header Fields Too Large")

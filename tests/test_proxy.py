"""Behind proxies: X-Forwarded-For/-Proto and RFC 7239 Forwarded, trusted and untrusted."""

from __future__ import annotations

import json

import pytest

from fastserve.proxy import MAX_HOPS, VERDICTS_MAX, ProxyConfigError, ProxyTrust
from tests.apps import scope_app
from tests.conftest import read_response


def client_and_scheme(server, *headers: str) -> list:
    with server.connect() as sock:
        head = "".join(f"{header}\r\n" for header in headers)
        sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode("latin-1"))
        status, _, body = read_response(sock)
    assert status == 200
    scope = json.loads(body)
    return [scope["client"], scope["scheme"]]


def test_trusted_proxy_names_the_client_and_scheme(serve):
    with serve(scope_app) as server:  # trusts 127.0.0.1 and ::1 by default
        assert client_and_scheme(server, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https") == [
            ["203.0.113.7", 0],
            "https",
        ]
        # Without the headers the peer is the client.
        client, scheme = client_and_scheme(server)
        assert client[0] == "127.0.0.1" and scheme == "http"
        # Only http, https, ws and wss are taken as the scheme.
        assert client_and_scheme(server, "X-Forwarded-Proto: javascript")[1] == "http"
        # Not an address: the proxy stays the client.
        assert client_and_scheme(server, "X-Forwarded-For: <script>")[0][0] == "127.0.0.1"


def test_untrusted_peer_headers_are_ignored(serve):
    with serve(scope_app, forwarded_allow_ips="10.0.0.1") as server:
        client, scheme = client_and_scheme(server, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
    assert client[0] == "127.0.0.1" and scheme == "http"


def test_proxy_headers_off(serve):
    with serve(scope_app, proxy_headers=False) as server:
        client, scheme = client_and_scheme(server, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
    assert client[0] == "127.0.0.1" and scheme == "http"


@pytest.mark.parametrize("allow", ["127.0.0.1", "*"])
def test_spoofed_leftmost_address_is_not_taken(serve, allow):
    """A client that sends its own X-Forwarded-For gets the address the proxy appended, not its invention."""
    with serve(scope_app, forwarded_allow_ips=allow) as server:
        client, _ = client_and_scheme(server, "X-Forwarded-For: 6.6.6.6, 203.0.113.7")
    assert client == ["203.0.113.7", 0]


def test_chain_of_trusted_proxies_is_walked_right_to_left(serve):
    with serve(scope_app, forwarded_allow_ips="127.0.0.1, 10.0.0.0/8") as server:
        assert client_and_scheme(server, "X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.2.3, 10.9.9.9")[0] == [
            "203.0.113.7",
            0,
        ]
        # Every hop trusted: the leftmost is the client. Repeated headers are one list.
        assert client_and_scheme(server, "X-Forwarded-For: 10.1.1.1", "X-Forwarded-For: 10.2.2.2")[0] == [
            "10.1.1.1",
            0,
        ]
        # Protos aligned with the hops: the client's own.
        assert client_and_scheme(
            server, "X-Forwarded-For: 203.0.113.7, 10.1.2.3", "X-Forwarded-Proto: https, http"
        ) == [["203.0.113.7", 0], "https"]


def test_rfc7239_forwarded(serve):
    options = {"forwarded_allow_ips": "127.0.0.1,10.0.0.0/8", "forwarded_style": "rfc7239"}
    with serve(scope_app, **options) as server:
        header = 'Forwarded: for="[2001:db8::1]:4711";proto=https;by=10.0.0.2, for=10.0.0.1;proto=http'
        assert client_and_scheme(server, header) == [["2001:db8::1", 4711], "https"]
        assert client_and_scheme(server, "Forwarded: for=6.6.6.6, for=203.0.113.9;proto=https") == [
            ["203.0.113.9", 0],
            "https",
        ]
        # X-Forwarded-* count for nothing in this style.
        client, scheme = client_and_scheme(server, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
        assert client[0] == "127.0.0.1" and scheme == "http"
        # An obfuscated or unknown node leaves the proxy as the client.
        assert client_and_scheme(server, "Forwarded: for=_hidden")[0][0] == "127.0.0.1"
        # A cut-off quoted string is ignored whole.
        assert client_and_scheme(server, 'Forwarded: for="203.0.113.9')[0][0] == "127.0.0.1"


def test_trust_rules():
    trust = ProxyTrust("10.0.0.0/8, ::1, proxy.internal")
    assert trust.trusts_peer(("10.3.4.5", 1)) and trust.trusts_peer(("::1", 1))
    assert not trust.trusts_peer(("11.0.0.1", 1))
    assert trust.trusts_hop("proxy.internal")
    assert not trust.trusts_peer(None)  # a Unix socket peer needs "unix:" or "*"
    assert ProxyTrust("unix:").trusts_peer(None)
    everyone = ProxyTrust("*")
    assert everyone.trusts_peer(("198.51.100.1", 1)) and everyone.trusts_peer(None)
    assert not everyone.trusts_hop("198.51.100.1")
    with pytest.raises(ProxyConfigError):
        ProxyTrust("10.0.0.0/99")
    with pytest.raises(ProxyConfigError):
        ProxyTrust("*", style="bogus")


def test_trust_verdicts_are_remembered_correctly_and_bounded():
    trust = ProxyTrust("10.0.0.0/8")
    for _ in range(2):  # decided, then remembered
        assert trust.trusts_hop("10.1.2.3") and not trust.trusts_hop("11.1.2.3") and not trust.trusts_hop("x")
    for index in range(3 * VERDICTS_MAX):
        assert trust.trusts_hop(f"10.{index % 256}.{index // 256 % 256}.1")
    assert len(trust.verdicts) <= VERDICTS_MAX
    assert not trust.trusts_hop("11.1.2.3")


def test_x_forwarded_for_with_ports():
    trust = ProxyTrust("127.0.0.1")
    headers = [(b"x-forwarded-for", b"[2001:db8::7]:8443")]
    assert trust.resolve(headers, ("127.0.0.1", 5), "http") == (("2001:db8::7", 8443), "http")
    headers = [(b"x-forwarded-for", b"203.0.113.7:51000")]
    assert trust.resolve(headers, ("127.0.0.1", 5), "http") == (("203.0.113.7", 51000), "http")


def test_x_forwarded_proto_not_aligned_with_the_hops_is_the_nearest_proxys():
    trust = ProxyTrust("127.0.0.1, 10.0.0.0/8")
    headers = [(b"x-forwarded-for", b"203.0.113.7, 10.1.2.3"), (b"x-forwarded-proto", b"https")]
    assert trust.resolve(headers, ("127.0.0.1", 5), "http") == (("203.0.113.7", 0), "https")
    assert trust.resolve([(b"x-forwarded-proto", b"wss")], ("127.0.0.1", 5), "http") == (("127.0.0.1", 5), "https")


@pytest.mark.parametrize("style", ["x-forwarded", "rfc7239"])
def test_only_the_nearest_hops_are_walked(style):
    """A client that writes hundreds of trusted-looking hops gets neither its leftmost pick nor a costly walk."""
    trust = ProxyTrust("10.0.0.0/8", style=style)
    hops = ["6.6.6.6"] + [f"10.0.{i // 250}.{i % 250}" for i in range(300)]
    if style == "rfc7239":
        headers = [(b"forwarded", ", ".join(f"for={hop}" for hop in hops).encode())]
    else:
        headers = [(b"x-forwarded-for", ", ".join(hops).encode())]
    client, _ = trust.resolve(headers, ("10.9.9.9", 1), "http")
    assert client == (hops[-MAX_HOPS], 0)

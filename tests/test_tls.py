"""TLS: certificates from trustme, with and without client certificates, and the ASGI ``tls`` extension."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trustme

from tests.apps import scope_app
from tests.conftest import client_context, recv_all
from tests.processes import run_cli


def test_https_scope_and_tls_extension(serve, ca, server_files):
    with serve(scope_app, ssl_certfile=server_files["certfile"], ssl_keyfile=server_files["keyfile"]) as server:
        url = f"https://127.0.0.1:{server.port}/secure"
        with httpx.Client(verify=client_context(ca)) as client:
            scope = client.get(url).json()
            again = client.get(url).json()
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["server_cert"] == server_files["cert"].cert_chain_pems[0].bytes().decode()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None and tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304  # both sides offer TLS 1.3
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)  # the TLS 1.3 suites
    assert again["extensions"]["tls"] == tls


def test_client_certificate_is_verified_and_reported(serve, ca, server_files):
    alice = ca.issue_cert(
        "alice@example.com", common_name="alice", organization_name="Example, Inc.", organization_unit_name="#ops"
    )
    options = {
        "ssl_certfile": server_files["certfile"],
        "ssl_keyfile": server_files["keyfile"],
        "ssl_ca_certs": server_files["cafile"],
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with serve(scope_app, **options) as server:
        url = f"https://127.0.0.1:{server.port}/"
        with httpx.Client(verify=client_context(ca, alice)) as client:
            tls = client.get(url).json()["extensions"]["tls"]
        # Without a certificate the handshake fails; the server goes on serving.
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=client_context(ca)) as client:
            client.get(url)
        stranger = trustme.CA().issue_cert("mallory@example.com", common_name="mallory")
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=client_context(ca, stranger)) as client:
            client.get(url)
        with httpx.Client(verify=client_context(ca, alice)) as client:
            assert client.get(url).status_code == 200
    assert tls["client_cert_chain"][0] == alice.cert_chain_pems[0].bytes().decode()
    assert tls["client_cert_name"] == "CN=alice,OU=\\#ops,O=Example\\, Inc."
    assert tls["client_cert_error"] is None


def test_optional_client_certificate(serve, ca, server_files):
    options = {
        "ssl_certfile": server_files["certfile"],
        "ssl_keyfile": server_files["keyfile"],
        "ssl_ca_certs": server_files["cafile"],
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
    }
    with serve(scope_app, **options) as server, httpx.Client(verify=client_context(ca)) as client:
        tls = client.get(f"https://127.0.0.1:{server.port}/").json()["extensions"]["tls"]
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


def test_plain_http_and_a_silent_client_on_the_tls_port(serve, ca, server_files):
    options = {
        "ssl_certfile": server_files["certfile"],
        "ssl_keyfile": server_files["keyfile"],
        "timeout_ssl_handshake": 0.5,
    }
    with serve(scope_app, **options) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"HTTP/1.1 200" not in recv_all(sock)  # no plain-text answer, the connection just ends
        with server.connect() as sock:
            assert recv_all(sock, timeout=5) == b""  # closed by the handshake timeout
        with httpx.Client(verify=client_context(ca)) as client:
            assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200


def test_the_plain_scope_has_no_tls_extension(serve):
    with serve(scope_app) as server:
        scope = httpx.get(server.url()).json()
    assert scope["scheme"] == "http" and "tls" not in scope["extensions"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-certfile", "/nonexistent.pem"], "--ssl-certfile"),
        (["--ssl-keyfile", "/nonexistent.key"], "--ssl-keyfile and --ssl-ca-certs need --ssl-certfile"),
        (["--ssl-cert-reqs", "2", "--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}"], "--ssl-ca-certs"),
        (["--ssl-ciphers", "NOPE", "--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}"], "--ssl-ciphers"),
    ],
)
def test_bad_tls_options_are_one_line(server_files, args, message):
    args = [arg.format(**server_files) for arg in args]
    result = run_cli("tests.cli_apps:app", "--port", "0", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr

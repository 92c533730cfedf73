"""TLS: certificates from trustme, with and without client certificates, and the ASGI ``tls`` extension."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trustme

from tests.apps import scope_app
from tests.conftest import client_context, closed_after, recv_all, run_server
from tests.processes import run_cli


@pytest.fixture
def http() -> str:
    """What these tests check happens before or beside parsing: one parser is enough."""
    return "httptools"


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
            data, waited = closed_after(sock)
        assert data == b"" and 0.4 <= waited <= 3.0  # closed by the handshake timeout
        with httpx.Client(verify=client_context(ca)) as client:
            assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200


def test_the_plain_scope_has_no_tls_extension(serve):
    with serve(scope_app) as server:
        scope = httpx.get(server.url()).json()
    assert scope["scheme"] == "http" and "tls" not in scope["extensions"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-certfile", "/nonexistent.pem"], "--ssl-certfile /nonexistent.pem: no such file"),
        (["--ssl-certfile", "{keyfile}"], "--ssl-certfile {keyfile}: no PEM certificate in it"),
        (["--ssl-certfile", "{certfile}"], "--ssl-certfile {certfile}: no PEM private key in it"),
        (
            ["--ssl-certfile", "{certfile}", "--ssl-keyfile", "/nonexistent.key"],
            "--ssl-keyfile /nonexistent.key: no such file",
        ),
        (
            ["--ssl-certfile", "{certfile}", "--ssl-keyfile", "{cafile}"],
            "--ssl-keyfile {cafile}: no PEM private key in it",
        ),
        (
            ["--ssl-cert-reqs", "2", "--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}"],
            "--ssl-cert-reqs asks for client certificates: give --ssl-ca-certs to verify them with",
        ),
        (
            ["--ssl-ciphers", "NOPE", "--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}"],
            "--ssl-ciphers 'NOPE': no cipher can be selected",
        ),
    ],
)
def test_bad_tls_files_are_one_line_naming_the_file(server_files, args, message):
    """uvicorn's exit code (1), one line that names the file and what is wrong with it."""
    args = [arg.format(**server_files) for arg in args]
    result = run_cli("tests.cli_apps:app", "--port", "0", *args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"ERROR:    {message.format(**server_files)}"]


def test_a_key_without_a_certificate_is_a_usage_error():
    result = run_cli("tests.cli_apps:app", "--port", "0", "--ssl-keyfile", "/nonexistent.key")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "Error: --ssl-keyfile and --ssl-ca-certs need --ssl-certfile"


def test_encrypted_key_with_its_password(ca, server_files, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(server_files["cert"].private_key_pem.bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    options = {"ssl_certfile": server_files["certfile"], "ssl_keyfile": str(encrypted)}
    with run_server(scope_app, ssl_keyfile_password="s3cret", **options) as server:
        with httpx.Client(verify=client_context(ca)) as client:
            assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200
    result = run_cli("tests.cli_apps:app", "--port", "0", "--ssl-keyfile-password", "wrong", *_tls_args(options))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"ERROR:    --ssl-keyfile {encrypted}: the private key is encrypted: --ssl-keyfile-password is wrong"
    ]


def _tls_args(options: dict[str, str]) -> list[str]:
    return ["--ssl-certfile", options["ssl_certfile"], "--ssl-keyfile", options["ssl_keyfile"]]


@pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLSv1_2 is deprecated:DeprecationWarning")
def test_ssl_version_names_the_protocol(ca, server_files):
    # uvicorn's meaning: an ssl module PROTOCOL_* constant; a fixed TLS 1.2 context serves TLS 1.2 only.
    tls12 = ssl.PROTOCOL_TLSv1_2
    options = {"ssl_certfile": server_files["certfile"], "ssl_keyfile": server_files["keyfile"]}
    with run_server(scope_app, ssl_version=tls12, **options) as server:
        with httpx.Client(verify=client_context(ca)) as client:
            tls = client.get(f"https://127.0.0.1:{server.port}/").json()["extensions"]["tls"]
    assert tls["tls_version"] == 0x0303
    with run_server(scope_app, **options) as server:  # the default: TLS 1.2 at least, so 1.3 with a 1.3 client
        with httpx.Client(verify=client_context(ca)) as client:
            tls = client.get(f"https://127.0.0.1:{server.port}/").json()["extensions"]["tls"]
    assert tls["tls_version"] == 0x0304
    result = run_cli("tests.cli_apps:app", "--port", "0", "--ssl-version", "99", *_tls_args(options))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ssl-version 99" in lines[0], result.stderr

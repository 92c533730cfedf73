"""TLS: the server's SSL context from the ``--ssl-*`` options, and the ASGI ``tls`` scope extension."""

from __future__ import annotations

import os
import re
import ssl
from typing import Any

TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# Short names RFC 4514 gives the attribute types Python's getpeercert() spells out.
RFC4514_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.DOTALL)
_RFC4514_SPECIAL = re.compile(r'([\\"+,;<>])')


class TLSError(ValueError):
    """TLS options that do not give a working context; the message says which and why."""


def create_ssl_context(
    certfile: str,
    keyfile: str | None = None,
    password: str | None = None,
    ssl_version: int = ssl.PROTOCOL_TLS_SERVER,
    cert_reqs: int = ssl.CERT_NONE,
    ca_certs: str | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """uvicorn's options with uvicorn's meanings, and TLS 1.2 at least unless a version is named."""
    try:
        context = ssl.SSLContext(ssl_version)
    except (ValueError, OSError) as exc:
        raise TLSError(f"--ssl-version {ssl_version}: {exc}") from None
    if ssl_version in (ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_certificate(context, certfile, keyfile, password)
    try:
        context.verify_mode = ssl.VerifyMode(cert_reqs)
    except ValueError:
        raise TLSError(f"--ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required); got {cert_reqs}") from None
    if ca_certs:
        if not os.path.isfile(ca_certs):
            raise TLSError(f"--ssl-ca-certs {ca_certs}: no such file")
        try:
            context.load_verify_locations(ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"--ssl-ca-certs {ca_certs}: {exc}") from None
    elif cert_reqs != ssl.CERT_NONE:
        raise TLSError("--ssl-cert-reqs asks for client certificates: give --ssl-ca-certs to verify them with")
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise TLSError(f"--ssl-ciphers {ciphers!r}: no cipher can be selected") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load_certificate(context: ssl.SSLContext, certfile: str, keyfile: str | None, password: str | None) -> None:
    """Load the certificate and key; a failure names the file at fault and what is wrong with it."""
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise TLSError(f"{flag} {path}: no such file")
    asked = []

    def give_password() -> str:
        # A callable, so that OpenSSL never prompts on the terminal for an encrypted key.
        asked.append(True)
        return password or ""

    try:
        context.load_cert_chain(certfile, keyfile, give_password)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(_why_not_loaded(exc, certfile, keyfile, bool(asked), password is not None)) from None


def _why_not_loaded(exc: Exception, certfile: str, keyfile: str | None, asked: bool, has_password: bool) -> str:
    key_flag, key_path = ("--ssl-keyfile", keyfile) if keyfile is not None else ("--ssl-certfile", certfile)
    if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
        return f"{key_flag} {key_path}: the private key does not match the certificate in {certfile}"
    if not _contains(certfile, b"-----BEGIN CERTIFICATE-----"):
        return f"--ssl-certfile {certfile}: no PEM certificate in it"
    if not _contains(key_path, b"PRIVATE KEY-----"):
        return f"{key_flag} {key_path}: no PEM private key in it"
    if asked:
        problem = "--ssl-keyfile-password is wrong" if has_password else "give its password (--ssl-keyfile-password)"
        return f"{key_flag} {key_path}: the private key is encrypted: {problem}"
    return f"--ssl-certfile {certfile}: cannot load the certificate and key: {exc}"


def _contains(path: str, marker: bytes) -> bool:
    try:
        with open(path, "rb") as file:
            return marker in file.read()
    except OSError:
        return False


class TLSInfo:
    """What the ``tls`` extension of every scope on this server shares, and the per-connection part."""

    def __init__(self, context: ssl.SSLContext, certfile: str) -> None:
        with open(certfile) as file:
            first = _PEM_CERTIFICATE.search(file.read())
        self.server_cert = first.group() if first else None
        # The IANA number of a suite is the low 16 bits of OpenSSL's id.
        self.cipher_ids = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}

    def extension(self, ssl_object: Any) -> dict[str, Any]:
        """The ``tls`` extension for one connection (made once; every request of it shares it)."""
        chain = client_chain(ssl_object)
        cipher = ssl_object.cipher()
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": chain,
            "client_cert_name": rfc4514_name(ssl_object.getpeercert()) if chain else None,
            # A certificate that fails verification fails the handshake, so there is never an error to report.
            "client_cert_error": None,
            "tls_version": TLS_VERSIONS.get(ssl_object.version()),
            "cipher_suite": self.cipher_ids.get(cipher[0]) if cipher else None,
        }


def client_chain(ssl_object: Any) -> list[str]:
    """The client's certificates as PEM, its own first (the whole chain where Python gives it: 3.13+)."""
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return []  # (some 3.13 and 3.14 releases raise from get_unverified_chain() then)
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is None:
        return [ssl.DER_cert_to_PEM_cert(leaf)]
    # Early 3.13 releases give certificate objects, later ones DER bytes.
    return [ssl.DER_cert_to_PEM_cert(_der(certificate)) for certificate in get_chain() or [leaf]]


def _der(certificate: Any) -> bytes:
    if isinstance(certificate, bytes):
        return certificate
    return certificate.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]


def rfc4514_name(certificate: dict[str, Any] | None) -> str | None:
    """The subject of a verified certificate as an RFC 4514 string (most specific part first)."""
    if not certificate or "subject" not in certificate:
        return None
    parts = []
    for rdn in reversed(certificate["subject"]):
        parts.append("+".join(f"{RFC4514_NAMES.get(name, name)}={_escape(value)}" for name, value in rdn))
    return ",".join(parts)


def _escape(value: str) -> str:
    escaped = _RFC4514_SPECIAL.sub(r"\\\1", value).replace("\x00", "\\00")
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped

"""TLS identification: protocol version, cipher and the peer certificate's subject, issuer and validity."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID

from ronda.scanner.detect.conn import Conn, Deadline, insecure_tls_context

# Ports where TLS comes first (implicit TLS), and what runs inside.
IMPLICIT_TLS: dict[int, str] = {
    443: "https", 465: "smtps", 563: "nntps", 636: "ldaps", 853: "domain-s", 990: "ftps", 992: "telnets",
    993: "imaps", 995: "pop3s", 5061: "sips", 5986: "wsmans", 6697: "ircs", 8443: "https-alt",
    9443: "https", 10443: "https", 4443: "https",
}

_TLS_CONTEXT: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = insecure_tls_context()
    return _TLS_CONTEXT


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def describe_certificate(der: bytes) -> dict[str, Any]:
    """The fields an operator cares about, JSON-safe."""
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    info: dict[str, Any] = {
        "subject": _name(cert.subject),
        "subject_cn": _common_name(cert.subject),
        "issuer": _name(cert.issuer),
        "issuer_cn": _common_name(cert.issuer),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(not_after),
        "expired": not_after < datetime.now(UTC),
        "self_signed": cert.issuer == cert.subject,
        "serial": format(cert.serial_number, "x"),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "signature_algorithm": getattr(cert.signature_hash_algorithm, "name", None),
    }
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        if isinstance(san, x509.SubjectAlternativeName):
            info["san"] = [str(v) for v in san.get_values_for_type(x509.DNSName)][:20] + [
                str(v) for v in san.get_values_for_type(x509.IPAddress)
            ][:20]
    except x509.ExtensionNotFound:
        pass
    return info


def tls_details(conn: Conn) -> dict[str, Any]:
    """Version, cipher and certificate of an established TLS connection."""
    ssl_object = conn.writer.get_extra_info("ssl_object")
    details: dict[str, Any] = {}
    if not isinstance(ssl_object, ssl.SSLObject):
        return details
    details["version"] = ssl_object.version()
    cipher = ssl_object.cipher()
    if cipher:
        details["cipher"] = cipher[0]
    alpn = ssl_object.selected_alpn_protocol()
    if alpn:
        details["alpn"] = alpn
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        try:
            details.update(describe_certificate(der))
        except ValueError as exc:  # a certificate cryptography cannot parse is still worth noting
            details["certificate_error"] = str(exc)[:200]
    return details


async def open_tls(ip: str, port: int, deadline: Deadline) -> Conn | None:
    """A TLS connection, or None when the port does not speak TLS (handshake failure, reset, silence)."""
    try:
        return await Conn.open(ip, port, deadline, tls=tls_context())
    except (TimeoutError, ssl.SSLError, ConnectionError, OSError, EOFError):
        return None

"""Banner and reply parsers on real-world samples (the servers that send them are not all runnable here)."""

from __future__ import annotations

import struct

import pytest

from ronda.scanner.detect import result_from_banner
from ronda.scanner.detect.banners import parse_ftp, parse_imap, parse_smtp, parse_ssh
from ronda.scanner.detect.databases import parse_mysql_handshake, parse_postgres_reply, parse_redis_info
from ronda.scanner.detect.http import parse_http_response, parse_server_header
from ronda.scanner.detect.iana import iana_name
from ronda.scanner.detect.mongo import bson_decode, bson_encode, parse_op_msg
from ronda.scanner.detect.windows import parse_rdp_reply, parse_smb_reply
from ronda.scanner.profiling import os_family


@pytest.mark.parametrize(
    ("banner", "product", "version", "os_hint"),
    [
        ("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6", "OpenSSH", "8.9p1", "Ubuntu Linux"),
        ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "OpenSSH", "9.2p1", "Debian Linux"),
        ("SSH-2.0-OpenSSH_7.4", "OpenSSH", "7.4", None),
        ("SSH-2.0-OpenSSH_for_Windows_8.1", "OpenSSH for Windows", "8.1", "Microsoft Windows"),
        ("SSH-2.0-dropbear_2022.83", "Dropbear sshd", "2022.83", None),
        ("SSH-2.0-Cisco-1.25", "Cisco SSH", "1.25", None),
        ("SSH-2.0-ROSSSH", "MikroTik RouterOS sshd", None, "MikroTik RouterOS"),
        ("SSH-1.99-Sun_SSH_1.1", "Sun_SSH", "1.1", None),
    ],
)
def test_ssh(banner: str, product: str, version: str | None, os_hint: str | None) -> None:
    ident = parse_ssh(banner + "\r\n")
    assert ident is not None
    assert (ident.product, ident.version, ident.extra.get("os_hint")) == (product, version, os_hint)


def test_not_ssh() -> None:
    assert parse_ssh("HTTP/1.1 200 OK") is None


@pytest.mark.parametrize(
    ("banner", "product", "version"),
    [
        ("220 mx.example.com ESMTP Exim 4.96 Mon, 23 Nov 2026 04:00:00 +0000", "Exim smtpd", "4.96"),
        ("220 mail.example.com ESMTP Sendmail 8.15.2/8.15.2; Mon, 23 Nov 2026", "Sendmail", "8.15.2"),
        ("220 EXCH01.corp.local Microsoft ESMTP MAIL Service ready at Mon, 23 Nov 2026", "Microsoft Exchange smtpd",
         None),
        ("220 smtp.example.org ESMTP OpenSMTPD", "OpenSMTPD", None),
        ("220 relay ESMTP", None, None),
    ],
)
def test_smtp(banner: str, product: str | None, version: str | None) -> None:
    ident = parse_smtp(banner + "\r\n")
    assert ident is not None and (ident.product, ident.version) == (product, version)


def test_ftp_and_smtp_are_told_apart() -> None:
    assert parse_ftp("220 mx ESMTP Postfix\r\n") is None
    assert parse_smtp("220 (vsFTPd 3.0.3)\r\n") is None
    ident = parse_ftp("220 Microsoft FTP Service\r\n")
    assert ident is not None and ident.product == "Microsoft ftpd" and ident.extra["os_hint"] == "Microsoft Windows"
    ident = parse_ftp("220-FileZilla Server 1.5.1\r\n220 Please visit https://filezilla-project.org/\r\n")
    assert ident is not None and (ident.product, ident.version) == ("FileZilla ftpd", "1.5.1")


def test_imap_capabilities() -> None:
    ident = parse_imap("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Cyrus IMAP v3.0.1 server ready\r\n")
    assert ident is not None
    assert (ident.product, ident.version) == ("Cyrus imapd", "3.0.1")
    assert ident.extra["capabilities"] == ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN"]


@pytest.mark.parametrize(
    ("server", "product", "version"),
    [
        ("Apache/2.4.52 (Ubuntu)", "Apache httpd", "2.4.52"),
        ("Apache", "Apache httpd", None),
        ("Microsoft-IIS/10.0", "Microsoft IIS httpd", "10.0"),
        ("nginx", "nginx", None),
        ("openresty/1.21.4.1", "OpenResty", "1.21.4.1"),
        ("Apache-Coyote/1.1", "Apache Tomcat", "1.1"),
        ("Jetty(9.4.43.v20210629)", "Jetty", "9.4.43.v20210629"),
        ("lighttpd/1.4.59", "lighttpd", "1.4.59"),
        ("gunicorn/20.1.0", "gunicorn", "20.1.0"),
        ("CUPS/2.4 IPP/2.1", "CUPS", "2.4"),
        ("Caddy", "Caddy", None),
        ("MyServer/3.2-beta", "MyServer", "3.2-beta"),
    ],
)
def test_server_header(server: str, product: str, version: str | None) -> None:
    assert parse_server_header(server) == (product, version)


def test_http_response_details() -> None:
    ident = parse_http_response(
        b"HTTP/1.0 401 Unauthorized\r\nServer: Microsoft-IIS/8.5\r\nWWW-Authenticate: NTLM\r\n"
        b"X-Powered-By: ASP.NET\r\n\r\n<TITLE>401 - Unauthorized</TITLE>"
    )
    assert ident is not None
    assert ident.extra["status"] == 401 and ident.extra["auth"] == "NTLM" and ident.extra["powered_by"] == "ASP.NET"
    assert ident.extra["title"] == "401 - Unauthorized" and ident.extra["os_hint"] == "Microsoft Windows"
    assert parse_http_response(b"SSH-2.0-OpenSSH_9.0\r\n") is None


def _mysql_packet(version: bytes) -> bytes:
    payload = b"\x0a" + version + b"\x00" + struct.pack("<I", 42) + b"abcdefgh\x00" + b"\xff\xf7\x08\x02\x00"
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


@pytest.mark.parametrize(
    ("version", "product", "parsed", "os_hint"),
    [
        (b"8.0.35-0ubuntu0.22.04.1", "MySQL", "8.0.35", "Ubuntu Linux"),
        (b"5.5.5-10.11.6-MariaDB-0+deb12u1", "MariaDB", "10.11.6", "Debian Linux"),
        (b"11.2.2-MariaDB", "MariaDB", "11.2.2", None),
        (b"5.7.44-log", "MySQL", "5.7.44", None),
    ],
)
def test_mysql_handshake(version: bytes, product: str, parsed: str, os_hint: str | None) -> None:
    ident = parse_mysql_handshake(_mysql_packet(version))
    assert ident is not None
    assert (ident.product, ident.version, ident.extra.get("os_hint")) == (product, parsed, os_hint)
    assert ident.extra["connection_id"] == 42


def test_mysql_error_packet_and_garbage() -> None:
    message = b"Host '10.0.0.5' is not allowed to connect to this MariaDB server"
    payload = b"\xff" + struct.pack("<H", 1130) + message
    ident = parse_mysql_handshake(len(payload).to_bytes(3, "little") + b"\x00" + payload)
    assert ident is not None and ident.product == "MariaDB" and ident.version is None
    assert parse_mysql_handshake(b"SSH-2.0-OpenSSH_9.0\r\n") is None
    assert parse_mysql_handshake(b"\x05\x00\x00\x00\x0aabc") is None


def test_result_from_mysql_banner_uses_version_string() -> None:
    result = result_from_banner(3306, _mysql_packet(b"8.0.35-0ubuntu0.22.04.1"))
    assert result.banner == "8.0.35-0ubuntu0.22.04.1"
    assert result.cpe[0] == "cpe:2.3:a:oracle:mysql:8.0.35:*:*:*:*:*:*:*"


def _pg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def test_postgres_replies() -> None:
    sasl = parse_postgres_reply(_pg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\x00\x00"))
    assert sasl is not None and sasl.extra["auth"] == "sasl" and sasl.extra["sasl_mechanisms"] == ["SCRAM-SHA-256"]
    logged_in = parse_postgres_reply(
        _pg(b"R", struct.pack("!I", 0)) + _pg(b"S", b"server_version\x0016.4 (Debian 16.4-1.pgdg120+2)\x00")
        + _pg(b"Z", b"I")
    )
    assert logged_in is not None and logged_in.version == "16.4" and logged_in.extra["os_hint"] == "Debian Linux"
    error = parse_postgres_reply(_pg(b"E", b"SFATAL\x00C28000\x00Mno pg_hba.conf entry\x00\x00"))
    assert error is not None and error.extra["error"]["code"] == "28000"
    assert parse_postgres_reply(b"HTTP/1.1 400") is None


def test_redis_info() -> None:
    info = parse_redis_info("$100\r\n# Server\r\nredis_version:7.2.4\r\nos:Linux 6.1.0 x86_64\r\n")
    assert info["redis_version"] == "7.2.4" and info["os"] == "Linux 6.1.0 x86_64"


def test_bson_round_trip_and_op_msg() -> None:
    doc = {"hello": 1, "$db": "admin", "flag": True, "inner": {"a": "b"}}
    assert bson_decode(bson_encode(doc)) == doc
    assert parse_op_msg(b"\x00" * 10) is None


def test_rdp_and_smb_replies() -> None:
    assert parse_rdp_reply(b"\x03\x00\x00\x0b\x06\xd0\x00\x00\x12\x34\x00") is not None  # no negotiation (old RDP)
    assert parse_rdp_reply(b"HTTP/1.1 400 Bad Request\r\n") is None
    smb1 = parse_smb_reply(b"\x00\x00\x00\x30\xffSMBr" + b"\x00" * 43)
    assert smb1 is not None and smb1.extra == {"smb1": True}
    assert parse_smb_reply(b"\x00\x00\x00\x04abcd") is None


def test_iana_names() -> None:
    assert iana_name(22) == "ssh"
    assert iana_name(3389) == "ms-wbt-server"
    assert iana_name(5432) == "postgresql"


def test_os_family_of_network_oses_is_not_apple() -> None:
    assert os_family("Cisco IOS") == "network"
    assert os_family("Apple macOS/iOS") == "apple"
    assert os_family("Ubuntu Linux") == "linux"


def test_plain_http_sent_to_an_https_port_is_noticed() -> None:
    ident = parse_http_response(
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n"
        b"<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head></html>"
    )
    assert ident is not None and ident.extra["tls_required"] is True


def test_vnc_and_telnet_banners() -> None:
    vnc = result_from_banner(5900, b"RFB 003.008\n")
    assert vnc.service == "vnc" and vnc.extra["vnc"] == {"protocol": "3.8"}
    telnet = result_from_banner(23, b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27")
    assert telnet.service == "telnet"

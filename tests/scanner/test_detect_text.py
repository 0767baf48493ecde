"""Service detection against real servers on loopback: SSH, HTTP, SMTP, FTP, POP3, IMAP, silent ports."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ronda.scanner.detect import detect_services, identify_port
from ronda.scanner.detect.iana import iana_name
from tests.scanner.service_servers import (
    SSH_BANNER,
    greeting_handler,
    http_handler,
    serve,
    silent_handler,
    smtp_handler,
    ssh_handler,
)


async def test_ssh_banner_product_version_cpe_and_our_identification_line() -> None:
    received: list[bytes] = []
    async with serve(ssh_handler(received)) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert result.service == "ssh"
    assert (result.product, result.version) == ("OpenSSH", "8.9p1")
    assert result.banner == SSH_BANNER.decode().strip()
    assert result.cpe == ["cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"]
    assert result.extra["os_hint"] == "Ubuntu Linux"
    assert result.extra["ssh"]["protocol"] == "2.0"
    assert received and received[0].startswith(b"SSH-2.0-ronda_scanner")  # a well-behaved client line


async def test_http_status_server_header_title_and_cpes() -> None:
    async with serve(http_handler) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert result.service == "http"
    assert (result.product, result.version) == ("nginx", "1.18.0")
    http = result.extra["http"]
    assert http["status"] == 200
    assert http["server"] == "nginx/1.18.0 (Ubuntu)"
    assert http["title"] == "Ronda & Test Page"
    assert result.cpe == [
        "cpe:2.3:a:f5:nginx:1.18.0:*:*:*:*:*:*:*",
        "cpe:2.3:a:nginx:nginx:1.18.0:*:*:*:*:*:*:*",
    ]
    assert result.banner is not None and result.banner.startswith("HTTP/1.1 200 OK")


async def test_smtp_greeting_then_ehlo_capabilities_then_quit() -> None:
    commands: list[bytes] = []
    async with serve(smtp_handler(commands)) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert result.service == "smtp"
    assert result.product == "Postfix smtpd"
    assert result.cpe == ["cpe:2.3:a:postfix:postfix:*:*:*:*:*:*:*:*"]
    assert result.extra["smtp"]["starttls"] is True
    assert result.extra["smtp"]["ehlo"] == ["PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME"]
    assert commands[0].startswith(b"EHLO ") and commands[-1].strip() == b"QUIT"


@pytest.mark.parametrize(
    ("greeting", "service", "product", "version"),
    [
        (b"220 (vsFTPd 3.0.5)\r\n", "ftp", "vsftpd", "3.0.5"),
        (b"220 ProFTPD 1.3.7a Server (Debian) [::ffff:127.0.0.1]\r\n", "ftp", "ProFTPD", "1.3.7a"),
        (b"+OK Dovecot (Ubuntu) ready.\r\n", "pop3", "Dovecot pop3d", None),
        (b"* OK [CAPABILITY IMAP4rev1 SASL-IR IDLE STARTTLS AUTH=PLAIN] Dovecot (Ubuntu) ready.\r\n",
         "imap", "Dovecot imapd", None),
    ],
)
async def test_greeting_protocols(greeting: bytes, service: str, product: str, version: str | None) -> None:
    async with serve(greeting_handler(greeting)) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert (result.service, result.product, result.version) == (service, product, version)
    assert result.banner == greeting.decode().strip()
    assert result.cpe, "known products get CPE names"


async def test_ftp_vsftpd_cpe_uses_nvd_vendor() -> None:
    async with serve(greeting_handler(b"220 (vsFTPd 3.0.5)\r\n")) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert result.cpe == ["cpe:2.3:a:beasts:vsftpd:3.0.5:*:*:*:*:*:*:*"]


def _free_named_port() -> tuple[int, str]:
    """A port with an IANA name that nothing listens on here (privileged ports need root: skip them)."""
    for port in (9418, 11211, 5900, 1883, 6000, 2049, 873):
        name = iana_name(port)
        if not name:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.3", port))
            except OSError:
                continue
        return port, name
    pytest.skip("no free port with an IANA name on 127.0.0.3")


async def test_silent_port_gets_iana_name_within_the_budget() -> None:
    port, name = _free_named_port()
    async with serve(silent_handler, host="127.0.0.3", port=port):
        started = time.monotonic()
        result = await identify_port("127.0.0.3", port, timeout=1.0)
        elapsed = time.monotonic() - started
    assert result.service == name
    assert result.product is None and result.banner is None and result.cpe == []
    assert elapsed < 2.2, f"a silent port held detection for {elapsed:.2f}s (budget 1.0 s)"


async def test_closed_port_still_named_and_fast() -> None:
    with socket.socket() as holder:  # a port nobody listens on
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    started = time.monotonic()
    result = await identify_port("127.0.0.1", port, timeout=2)
    assert time.monotonic() - started < 1.5
    assert result.product is None and result.banner is None


async def test_detect_services_many_ports_at_once() -> None:
    received: list[bytes] = []
    async with serve(ssh_handler(received)) as ssh_port, serve(http_handler) as http_port, serve(
        greeting_handler(b"220 (vsFTPd 3.0.5)\r\n")
    ) as ftp_port:
        started = time.monotonic()
        results = await detect_services("127.0.0.1", [ssh_port, http_port, ftp_port, ssh_port], timeout=2,
                                        concurrency=2)
        elapsed = time.monotonic() - started
    assert sorted(results) == sorted({ssh_port, http_port, ftp_port})
    assert results[ssh_port].service == "ssh"
    assert results[http_port].service == "http"
    assert results[ftp_port].product == "vsftpd"
    assert elapsed < 2.5


async def test_raw_printing_port_is_listened_to_but_never_sent_a_probe() -> None:
    received: list[bytes] = []

    async def printer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(4096))  # b"" once the scanner leaves without writing anything

    try:
        async with serve(printer, host="127.0.0.7", port=9100):
            result = await identify_port("127.0.0.7", 9100, timeout=1.0)
    except OSError as exc:
        pytest.skip(f"cannot listen on 127.0.0.7:9100: {exc}")
    assert received == [b""], "a probe reached a raw printing port"
    assert result.service == iana_name(9100) and result.product is None


async def test_hosts_with_too_many_open_ports_get_names_for_the_excess() -> None:
    from ronda.scanner.detect import MAX_PROBED_PORTS

    ports = [*range(20000, 20000 + MAX_PROBED_PORTS), 22, 80]  # nothing listens on 127.0.0.10
    started = time.monotonic()
    results = await detect_services("127.0.0.10", ports, timeout=1, concurrency=100)
    assert time.monotonic() - started < 5
    assert sorted(results) == sorted(ports)
    skipped = [p for p, r in results.items() if r.extra.get("detection")]
    assert len(skipped) == 2 and 22 not in skipped and 80 not in skipped  # well-known ports are always probed
    assert results[22].service == "ssh"

"""Host profiling: OS and device-type guesses from known banners, ports and TTL; MAC vendors; reverse DNS."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from ronda.scanner.detect import result_from_banner
from ronda.scanner.profiling import (
    _hosts_file,
    combine,
    mac_vendor,
    parse_neighbour_line,
    profile_host,
    reverse_dns,
)
from ronda.scanner.types import HostResult, PortResult

HTTP_IIS = (b"HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/10.0\r\nContent-Length: 0\r\n\r\n")


async def test_ubuntu_ssh_banner_and_ttl_64_agree_on_ubuntu_linux() -> None:
    ssh = result_from_banner(22, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n")
    web = result_from_banner(80, b"HTTP/1.1 200 OK\r\nServer: nginx/1.18.0 (Ubuntu)\r\n\r\n")
    host = HostResult(ip="192.0.2.10", ttl=64, ports=[ssh, web])
    await profile_host(host, resolve_dns=False)
    assert host.os_guess == "Ubuntu Linux"
    assert host.os_confidence >= 90  # two banners and the TTL agree
    assert host.device_type == "server"
    assert 0 < host.device_type_confidence <= 100
    assert host.hostname is None  # resolve_dns=False


async def test_ttl_alone_is_a_weak_guess() -> None:
    linux = HostResult(ip="192.0.2.11", ttl=61)
    windows = HostResult(ip="192.0.2.12", ttl=126)
    network = HostResult(ip="192.0.2.13", ttl=254)
    for host in (linux, windows, network):
        await profile_host(host, resolve_dns=False)
    assert (linux.os_guess, linux.os_confidence) == ("Linux", 40)
    assert (windows.os_guess, windows.os_confidence) == ("Microsoft Windows", 45)
    assert network.os_guess == "Network OS" and network.device_type == "router"


async def test_iis_rdp_smb_mean_windows() -> None:
    ports = [result_from_banner(80, HTTP_IIS), PortResult(port=445, service="microsoft-ds"),
             PortResult(port=3389, service="ms-wbt-server"), PortResult(port=135, service="msrpc")]
    host = HostResult(ip="192.0.2.20", ttl=128, ports=ports)
    await profile_host(host, resolve_dns=False)
    assert ports[0].product == "Microsoft IIS httpd" and ports[0].extra["os_hint"] == "Microsoft Windows"
    assert host.os_guess == "Microsoft Windows"
    assert host.os_confidence >= 95


async def test_windows_desktop_ports_make_a_workstation() -> None:
    host = HostResult(ip="192.0.2.21", ttl=128, ports=[PortResult(port=p) for p in (135, 139, 445)])
    await profile_host(host, resolve_dns=False)
    assert (host.os_guess, host.device_type) == ("Microsoft Windows", "workstation")


async def test_conflicting_evidence_lowers_confidence() -> None:
    agree = HostResult(ip="192.0.2.30", ttl=64, ports=[result_from_banner(22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")])
    conflict = HostResult(ip="192.0.2.31", ttl=128,
                          ports=[result_from_banner(22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")])
    await profile_host(agree, resolve_dns=False)
    await profile_host(conflict, resolve_dns=False)
    assert agree.os_guess == conflict.os_guess == "Debian Linux"
    assert conflict.os_confidence < agree.os_confidence


@pytest.mark.parametrize(
    ("ports", "banners", "expected"),
    [
        ([9100, 631, 515], {}, "printer"),
        ([80, 9100], {80: b"HTTP/1.1 200 OK\r\nServer: HP HTTP Server; HP LaserJet M404\r\n\r\n"}, "printer"),
        ([554, 80], {}, "camera"),
        ([80], {80: b"HTTP/1.1 200 OK\r\nServer: Hikvision-Webs\r\n\r\n"}, "camera"),
        ([53, 80, 443], {80: b"HTTP/1.1 200 OK\r\nServer: RomPager/4.07\r\n\r\n"}, "router"),
        ([22, 53, 80], {80: b"HTTP/1.1 200 OK\r\n\r\n<html><title>OpenWrt - LuCI</title></html>"}, "router"),
        ([5000, 139, 445], {5000: b"HTTP/1.1 200 OK\r\n\r\n<title>Synology DiskStation</title>"}, "nas"),
        ([62078], {}, "mobile"),
        ([22, 80, 443, 5432], {}, "server"),
    ],
)
async def test_device_types_from_ports_and_banners(ports: list[int], banners: dict[int, bytes], expected: str) -> None:
    results = [result_from_banner(p, banners[p]) if p in banners else PortResult(port=p) for p in ports]
    host = HostResult(ip="192.0.2.40", ports=results)
    await profile_host(host, resolve_dns=False)
    assert host.device_type == expected
    assert host.device_type_confidence >= 40


@pytest.mark.parametrize(
    "line",
    [
        "192.168.1.20 dev eth0 lladdr b8:27:eb:12:34:56 REACHABLE",
        "192.168.1.20     0x1         0x2         B8:27:EB:12:34:56     *        eth0",
    ],
)
async def test_mac_from_neighbour_table_gives_vendor_and_iot_hint(line: str) -> None:
    parsed = parse_neighbour_line(line)
    assert parsed == ("192.168.1.20", "b8:27:eb:12:34:56")
    host = HostResult(ip=parsed[0], mac=parsed[1])
    await profile_host(host, resolve_dns=False)
    assert host.vendor == "Raspberry Pi Foundation"
    assert host.device_type == "iot"
    assert host.os_guess == "Linux"


def test_neighbour_lines_without_a_mac() -> None:
    assert parse_neighbour_line("192.168.1.21 dev eth0  FAILED") is None
    assert parse_neighbour_line("192.168.1.22  0x1  0x0  00:00:00:00:00:00  *  eth0") is None
    assert parse_neighbour_line("IP address  HW type  Flags  HW address  Mask  Device") is None


def test_mac_vendor_lookups() -> None:
    assert mac_vendor("3c:22:fb:00:00:01") == "Apple, Inc."
    assert mac_vendor("00-15-5D-00-00-01") == "Microsoft Corporation"
    assert mac_vendor("02:42:ac:11:00:02") is None  # locally administered (a Docker bridge address)
    assert mac_vendor("not a mac") is None


async def test_existing_stronger_guesses_are_kept() -> None:
    host = HostResult(ip="192.0.2.50", ttl=64, os_guess="Linux 5.15 (nmap)", os_confidence=97)
    await profile_host(host, resolve_dns=False)
    assert (host.os_guess, host.os_confidence) == ("Linux 5.15 (nmap)", 97)


async def test_reverse_dns_of_loopback_and_a_bound_on_time() -> None:
    host = HostResult(ip="127.0.0.1")
    await profile_host(host)
    assert host.hostname is not None and "localhost" in host.hostname
    started = time.monotonic()
    assert await reverse_dns("192.0.2.99", timeout=0.5) is None  # TEST-NET: no PTR, never hangs
    assert time.monotonic() - started < 1.0


def test_combine_picks_the_family_and_the_specific_name() -> None:
    name, confidence = combine([("Linux", 40), ("Ubuntu Linux", 80)], group="family")
    assert name == "Ubuntu Linux" and confidence == 88
    assert combine([]) == (None, 0)


class _PtrServer(asyncio.DatagramProtocol):
    """A real DNS server on loopback answering PTR queries from a table (NXDOMAIN otherwise)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        target = self.names.get(question.name.to_text())
        if target and question.rdtype == dns.rdatatype.PTR:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "PTR", target))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


async def test_reverse_dns_through_a_real_dns_server() -> None:
    loop = asyncio.get_running_loop()
    names = {"10.2.0.192.in-addr.arpa.": "printer.lab.example."}
    transport, _ = await loop.create_datagram_endpoint(lambda: _PtrServer(names), local_addr=("127.0.0.9", 0))
    try:
        server = transport.get_extra_info("sockname")
        assert await reverse_dns("192.0.2.10", timeout=1, nameserver=server) == "printer.lab.example"
        assert await reverse_dns("192.0.2.11", timeout=1, nameserver=server) is None
    finally:
        transport.close()


def test_hosts_file_names(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n10.1.2.3  nas.home nas\nnot-an-address bad\n2001:db8::5 six.home\n")
    names = _hosts_file(str(hosts))
    assert names == {"10.1.2.3": "nas.home", "2001:db8::5": "six.home"}

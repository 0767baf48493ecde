"""The nmap engine against local listeners, its XML parsing, cancellation; and run_scan's use of our hooks."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ronda.scanner import ScanEvent, ScanOptions, parse_targets, run_scan
from ronda.scanner.nmap_engine import build_args, nmap_available, parse_host, port_spec, run_nmap
from tests.scanner.service_servers import serve, silent_handler, ssh_handler

needs_nmap = pytest.mark.skipif(not nmap_available(), reason="nmap is not installed (apt-get install nmap)")

HOST_XML = (
    '<host starttime="1" endtime="2"><status state="up" reason="arp-response" reason_ttl="64"/>'
    '<address addr="192.168.1.20" addrtype="ipv4"/>'
    '<address addr="B8:27:EB:12:34:56" addrtype="mac" vendor="Raspberry Pi Foundation"/><hostnames>'
    '<hostname name="pi.lan" type="PTR"/></hostnames><ports><extraports state="closed" count="997">'
    '<extrareasons reason="conn-refused" count="997"/></extraports><port protocol="tcp" portid="22">'
    '<state state="open" reason="syn-ack" reason_ttl="64"/>'
    '<service name="ssh" product="OpenSSH" version="8.9p1 Ubuntu 3ubuntu0.6" '
    'extrainfo="Ubuntu Linux; protocol 2.0" ostype="Linux" method="probed" conf="10">'
    '<cpe>cpe:/a:openbsd:openssh:8.9p1</cpe><cpe>cpe:/o:linux:linux_kernel</cpe></service></port>'
    '<port protocol="tcp" portid="443"><state state="open" reason="syn-ack" reason_ttl="64"/>'
    '<service name="http" product="nginx" version="1.18.0" tunnel="ssl" method="probed" conf="10"/>'
    '</port><port protocol="tcp" portid="8080">'
    '<state state="filtered" reason="no-response" reason_ttl="0"/></port></ports><os>'
    '<osmatch name="Linux 5.0 - 5.4" accuracy="96" line="1">'
    '<osclass type="general purpose" vendor="Linux" osfamily="Linux" osgen="5.X" accuracy="96"><cpe>'
    'cpe:/o:linux:linux_kernel:5</cpe></osclass></osmatch>'
    '<osmatch name="Linux 4.15" accuracy="90" line="2"/></os>'
    '<times srtt="1500" rttvar="200" to="100000"/></host>'
)


def test_parse_host_from_nmap_xml() -> None:
    host = parse_host(ET.fromstring(HOST_XML), assumed_up=False)
    assert host is not None
    assert (host.ip, host.mac, host.vendor, host.hostname) == ("192.168.1.20", "B8:27:EB:12:34:56",
                                                              "Raspberry Pi Foundation", "pi.lan")
    assert (host.ttl, host.rtt_ms) == (64, 1.5)
    assert (host.os_guess, host.os_confidence) == ("Linux 5.0 - 5.4", 96)
    assert [p.port for p in host.ports] == [22, 443]  # only open ports
    ssh, https = host.ports
    assert (ssh.service, ssh.product, ssh.version) == ("ssh", "OpenSSH", "8.9p1")
    assert ssh.cpe == ["cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"]
    assert ssh.extra["nmap"]["cpe"][1] == "cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*"
    assert ssh.extra["os_hint"] == "Linux"
    assert https.service == "https"
    assert https.cpe == ["cpe:2.3:a:f5:nginx:1.18.0:*:*:*:*:*:*:*", "cpe:2.3:a:nginx:nginx:1.18.0:*:*:*:*:*:*:*"]


def test_assumed_up_hosts_that_answered_nothing_are_dropped() -> None:
    xml = ('<host><status state="up" reason="user-set" reason_ttl="0"/><address addr="10.0.0.9" addrtype="ipv4"/>'
           '<ports><extraports state="filtered" count="100"/></ports></host>')
    assert parse_host(ET.fromstring(xml), assumed_up=True) is None
    assert parse_host(ET.fromstring(xml), assumed_up=False) is not None


def test_port_spec_and_args() -> None:
    assert port_spec([80, 22, 23, 24, 8000, 8001, 9000]) == "22-24,80,8000-8001,9000"
    args = build_args(ScanOptions(targets=["x"], profile="quick", discovery=False), [22, 80], ipv6=False, root=False)
    assert args[:2] == ["-sT", "-n"] and "-Pn" in args and "-sV" in args and "--version-light" in args
    assert "-O" not in args
    deep = build_args(ScanOptions(targets=["x"], profile="deep"), [22], ipv6=True, root=True)
    assert "-O" in deep and "-6" in deep and "-Pn" not in deep
    stealth = build_args(ScanOptions(targets=["x"], profile="stealth"), [22], ipv6=False, root=True)
    assert "-T2" in stealth and "--max-rate" in stealth and "-sV" not in stealth and "-O" not in stealth


@needs_nmap
async def test_run_nmap_against_local_listeners() -> None:
    received: list[bytes] = []
    with socket.socket() as holder:
        holder.bind(("127.0.0.4", 0))
        closed_port = holder.getsockname()[1]
    async with serve(ssh_handler(received), host="127.0.0.4") as ssh_port:
        events: list[ScanEvent] = []
        options = ScanOptions(targets=["127.0.0.4"], discovery=False, enable_profiling=False, engine="nmap")
        result = await run_nmap(options, parse_targets("127.0.0.4"), [ssh_port, closed_port], events.append)
    assert result.engine == "nmap"
    assert [h.ip for h in result.hosts] == ["127.0.0.4"]
    [port] = result.hosts[0].ports
    assert (port.port, port.service, port.product, port.version) == (ssh_port, "ssh", "OpenSSH", "8.9p1")
    assert "cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*" in port.cpe
    kinds = [e.kind for e in events]
    assert "host_found" in kinds and "port_found" in kinds
    assert events[-1].kind == "progress" and events[-1].data["progress_percent"] == 100.0


def _nmap_children() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and name == "nmap":
            found.append(int(entry.name))
    return found


@needs_nmap
async def test_cancelling_kills_nmap() -> None:
    async with serve(silent_handler, host="127.0.0.5") as port:
        options = ScanOptions(targets=["127.0.0.5"], discovery=False, enable_profiling=False, engine="nmap")
        task = asyncio.ensure_future(run_nmap(options, parse_targets("127.0.0.5"), [port], None))
        deadline = time.monotonic() + 5
        while not _nmap_children() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _nmap_children(), "nmap never started"
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert _nmap_children() == []


async def test_run_scan_uses_detection_and_profiling_hooks() -> None:
    received: list[bytes] = []
    async with serve(ssh_handler(received), host="127.0.0.6") as port:
        options = ScanOptions(targets=["127.0.0.6"], ports=str(port), profile="normal", discovery=False)
        result = await run_scan(options)
    [host] = result.hosts
    [found] = host.ports
    assert (found.service, found.product, found.version) == ("ssh", "OpenSSH", "8.9p1")
    assert found.cpe == ["cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"]
    assert host.os_guess == "Ubuntu Linux" and host.os_confidence > 0  # profiling ran


@needs_nmap
async def test_run_scan_with_the_nmap_engine() -> None:
    received: list[bytes] = []
    async with serve(ssh_handler(received), host="127.0.0.8") as port:
        options = ScanOptions(targets=["127.0.0.8"], ports=str(port), profile="quick", discovery=False, engine="nmap")
        result = await run_scan(options)
    assert result.engine == "nmap"
    assert [(p.port, p.product) for h in result.hosts for p in h.ports] == [(port, "OpenSSH")]

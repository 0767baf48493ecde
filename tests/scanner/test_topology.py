"""The scanner across a real (namespaced) network: a bridge, three hosts, 20 ms RTT and 1% loss.

Delay and loss come from `tc netem`, or from netlab's userspace wire on kernels built without netem.
Skipped, saying why, where network namespaces cannot be created (not root, no iproute2)."""

import json
import subprocess
import sys
import time

import pytest

from tests.scanner.netlab import Lab, LabUnavailable

HOSTS = {10: [22, 80], 20: [443, 3306], 30: [], 40: [8080]}
NO_PING = (30, 40)  # these drop ICMP echo: found through ARP (the neighbour table)
PORTS = "21,22,25,80,443,3306,8080"


@pytest.fixture(scope="module")
def lab() -> object:
    try:
        with Lab(HOSTS, delay_ms=10, loss=0.01, ignore_ping=NO_PING) as built:
            yield built
    except LabUnavailable as exc:
        pytest.skip(f"topology test skipped: {exc}")


def test_discovers_hosts_and_exact_open_ports_across_the_lab(lab: Lab) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [*lab.exec_prefix(), sys.executable, "-m", "ronda.scanner", lab.network, "--ports", PORTS,
         "--no-detection", "--no-profiling", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    found = {h["ip"]: sorted(p["port"] for p in h["ports"]) for h in data["hosts"]}
    expected = {lab.ip_of(octet): ports for octet, ports in HOSTS.items()}
    expected[lab.ip_of(1)] = []  # the scanner's own address on the bridge
    assert found == expected
    assert data["hosts_total"] == 254
    by_ip = {h["ip"]: h for h in data["hosts"]}
    for octet in HOSTS:
        host = by_ip[lab.ip_of(octet)]
        assert host["mac"] and len(host["mac"]) == 17  # from the kernel's neighbour table
        if octet not in NO_PING:
            assert host["rtt_ms"] and host["rtt_ms"] >= 15  # 10 ms each way
    # 251 silent addresses must not cost a timeout each
    assert took < 20
    print(f"lab link emulation: {lab.mode}; scan took {took:.2f} s")


def test_discovery_without_icmp_or_arp_finds_hosts_by_tcp(lab: Lab) -> None:
    # what an unprivileged scanner has: TCP connect probes (a refusal proves a host) and the neighbour table
    code = (
        "import json; from ronda.scanner.discovery import discover; "
        f"alive = discover([f'{lab.prefix}.{{i}}' for i in range(2, 255)], timeout=1.0, icmp=False); "
        "print(json.dumps({ip: a.how for ip, a in alive.items()}))"
    )
    proc = subprocess.run(
        [*lab.exec_prefix(), sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert set(found) == {lab.ip_of(octet) for octet in HOSTS}
    assert set(found.values()) <= {"tcp", "neighbour"}


def test_ipv6_hosts_and_ports_across_the_lab(lab: Lab) -> None:
    proc = subprocess.run(
        [*lab.exec_prefix(), sys.executable, "-m", "ronda.scanner", "fd00:77::2-fd00:77::ff", "--ports", PORTS,
         "--no-detection", "--no-profiling", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    found = {h["ip"]: sorted(p["port"] for p in h["ports"]) for h in data["hosts"]}
    # found through Neighbour Solicitation and ICMPv6 echo (icmp_echo_ignore_all is IPv4 only)
    assert found == {lab.ip6_of(octet): ports for octet, ports in HOSTS.items()}
    assert all(h["mac"] for h in data["hosts"])

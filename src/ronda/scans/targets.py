"""Checking a scan request before it is queued: targets, ports, allowed networks, the target key.

Runs in a worker thread (host names are resolved here, and a /16 is 65,536 addresses to look at),
so the API's event loop never waits on it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ronda.scanner import PROFILES, ScanInputError, parse_ports, parse_targets

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutsideAllowed(Exception):
    """A target network is not inside RONDA_SCAN_ALLOWED_NETWORKS."""


@dataclass(frozen=True, slots=True)
class Prepared:
    networks: list[str]  # the exact address set as collapsed CIDRs
    ranges: list[str]  # the same set as address ranges, what the worker is told to scan
    hosts_total: int
    ports: str  # the port spec scanned (the caller's, or the profile's)
    port_count: int
    hostnames: dict[str, str]  # ip -> the host name the caller gave for it
    target_key: str


def allowed_networks(setting: str) -> list[Network]:
    given = [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()]
    v4 = [n for n in given if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in given if isinstance(n, ipaddress.IPv6Network)]
    # Collapsed, a target block is covered by their union exactly when one of them holds it.
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def _inside(network: Network, allowed: Sequence[Network]) -> bool:
    return any(
        network.version == other.version and network.subnet_of(other)  # type: ignore[arg-type]
        for other in allowed
    )


def ranges_of(networks: Sequence[Network]) -> list[str]:
    """Adjacent blocks merged into first-last ranges (a lone address stays an address)."""
    spans: list[tuple[int, int, int]] = []  # version, first, last
    for network in sorted(networks, key=lambda n: (n.version, int(n.network_address))):
        first, last = int(network.network_address), int(network.broadcast_address)
        if spans and spans[-1][0] == network.version and spans[-1][2] + 1 == first:
            spans[-1] = (network.version, spans[-1][1], last)
        else:
            spans.append((network.version, first, last))
    out = []
    for version, first, last in spans:
        start = ipaddress.ip_address(first) if version == 4 else ipaddress.IPv6Address(first)
        end = ipaddress.ip_address(last) if version == 4 else ipaddress.IPv6Address(last)
        out.append(str(start) if first == last else f"{start}-{end}")
    return out


def prepare(
    target: str | Sequence[str], exclude: Sequence[str], ports: str | None, profile: str, *,
    max_hosts: int, allowed_setting: str,
) -> Prepared:
    """ScanInputError for unusable input, OutsideAllowed for a target the server may not scan."""
    targets = parse_targets(target, exclude, max_hosts=max_hosts)
    spec = ports or PROFILES[profile].ports
    port_list = parse_ports(spec)
    if not port_list:
        raise ScanInputError("no ports to scan", "ports")
    networks = targets.networks
    allowed = allowed_networks(allowed_setting)
    for network in networks:
        if not _inside(network, allowed):
            raise OutsideAllowed(str(network))
    texts = [str(n) for n in networks]
    key = hashlib.sha256(",".join(texts).encode()).hexdigest()
    return Prepared(
        networks=texts, ranges=ranges_of(networks), hosts_total=len(targets), ports=spec,
        port_count=len(port_list), hostnames=dict(targets.hostnames), target_key=key,
    )


def network_set(networks: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(text, strict=False) for text in networks]


def contains(networks: Sequence[Network], ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)

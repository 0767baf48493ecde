"""A scan's difference from the previous completed scan of the same target."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from ronda.scanner import HostResult
from ronda.scans.models import ScanHost

PortKey = tuple[str, int, str]  # ip, port, protocol


def _order(key: PortKey) -> tuple[int, int, int, str]:
    try:
        address = ipaddress.ip_address(key[0])
        return (address.version, int(address), key[1], key[2])
    except ValueError:
        return (9, 0, key[1], key[2])


def _ip_order(ip: str) -> tuple[int, int]:
    return _order((ip, 0, ""))[:2]


def open_ports_of(hosts: Iterable[HostResult]) -> dict[PortKey, str | None]:
    return {(h.ip, p.port, p.protocol): p.service for h in hosts for p in h.ports if p.state == "open"}


def open_ports_of_rows(rows: Iterable[ScanHost]) -> dict[PortKey, str | None]:
    out: dict[PortKey, str | None] = {}
    for row in rows:
        for port in row.ports or []:
            if port.get("state", "open") == "open":
                out[(row.ip, int(port["port"]), str(port.get("protocol") or "tcp"))] = port.get("service")
    return out


def _refs(keys: Iterable[PortKey], services: dict[PortKey, str | None]) -> list[dict[str, Any]]:
    return [{"ip": k[0], "port": k[1], "protocol": k[2], "service": services.get(k)} for k in sorted(keys, key=_order)]


def compute(
    hosts: Sequence[HostResult], previous_id: str | None, previous_rows: Sequence[ScanHost], scanned: set[int],
) -> dict[str, Any]:
    """new_hosts / new_ports: not in the previous scan (everything, on a target's first scan);
    closed_ports: open then, not open now, among the ports this scan probed; missing_hosts: up then, not now."""
    now_open = open_ports_of(hosts)
    now_ips = {h.ip for h in hosts}
    before_open = open_ports_of_rows(previous_rows)
    before_ips = {row.ip for row in previous_rows}
    closed = {k for k in before_open if k not in now_open and (k[2] != "tcp" or k[1] in scanned)}
    return {
        "previous_scan_id": previous_id,
        "new_hosts": sorted(now_ips - before_ips, key=_ip_order),
        "missing_hosts": sorted(before_ips - now_ips, key=_ip_order),
        "new_ports": _refs(set(now_open) - set(before_open), now_open),
        "closed_ports": _refs(closed, before_open),
    }

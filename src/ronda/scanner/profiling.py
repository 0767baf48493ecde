"""Host profiling: reverse DNS, MAC vendor (IEEE registry via netaddr, offline), OS and device-type guesses.

Guesses are built from evidence (banner hints, products, port fingerprints, TTL, MAC vendor), each piece
with its own confidence; independent pieces that agree add up (1 - Π(1 - c)), disagreeing ones lower the
winner's confidence. Nothing here touches the network except the reverse DNS lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable

import dns.asyncresolver
import dns.exception
from netaddr import EUI, AddrFormatError, NotRegisteredError

from ronda.scanner.types import HostResult, PortResult

DNS_TIMEOUT = 2.0

Evidence = tuple[str, int]  # (name, confidence 0-100)

# OS name → family, so "Ubuntu Linux" from a banner and "Linux" from the TTL support each other.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("cisco", "network"), ("routeros", "network"), ("junos", "network"), ("openwrt", "network"),
    ("network", "network"), ("windows", "windows"), ("linux", "linux"), ("raspbian", "linux"), ("bsd", "bsd"),
    ("macos", "apple"), ("ios", "apple"),
)


def os_family(name: str) -> str:
    lowered = name.lower()
    for word, family in _FAMILIES:
        if word in lowered:
            return family
    return lowered


@functools.cache
def _hosts_file(path: str = "/etc/hosts") -> dict[str, str]:
    """ip → first name in the hosts file (read once; names there never reach DNS)."""
    names: dict[str, str] = {}
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2:
                with contextlib.suppress(ValueError):
                    names.setdefault(str(ipaddress.ip_address(words[0])), words[1])
    return names


async def reverse_dns(
    ip: str, timeout: float = DNS_TIMEOUT, nameserver: tuple[str, int] | None = None  # noqa: ASYNC109
) -> str | None:
    """PTR name of `ip` (hosts file, then DNS), or None: no record, resolver error or slower than `timeout`.

    DNS goes through dnspython's asyncio resolver rather than getnameinfo in threads: a /24 of hosts
    without PTR records would otherwise queue behind a handful of executor threads. `nameserver`
    (address, port) asks that server instead of the system's (a site's own DNS).
    """
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        return None
    local = _hosts_file().get(ip)
    if local:
        return local
    try:
        async with asyncio.timeout(timeout):
            if nameserver is None:
                answer = await dns.asyncresolver.resolve_address(ip, lifetime=timeout)
            else:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers, resolver.port = [nameserver[0]], nameserver[1]
                answer = await resolver.resolve_address(ip, lifetime=timeout)
    except (TimeoutError, dns.exception.DNSException, OSError):
        if nameserver is not None:
            return None
        return await _getnameinfo(ip, timeout)  # no usable resolver config: the system's own lookup
    for record in answer:
        name = str(record).rstrip(".")
        if name:
            return name
    return None


async def _getnameinfo(ip: str, timeout: float) -> str | None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            name, _ = await loop.getnameinfo((ip, 0), socket.NI_NAMEREQD)
    except (TimeoutError, OSError, UnicodeError):
        return None
    return None if not name or name == ip else name


def mac_vendor(mac: str) -> str | None:
    """Organisation registered for the MAC's OUI (IEEE registry shipped with netaddr)."""
    try:
        eui = EUI(mac)
    except (AddrFormatError, ValueError, TypeError):
        return None
    if eui.words[0] & 0x02:  # locally administered (randomised) addresses have no registered owner
        return None
    with contextlib.suppress(NotRegisteredError, IndexError, KeyError):
        org = eui.oui.registration().org
        return str(org).strip() or None
    return None


_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$", re.I)


def parse_neighbour_line(line: str) -> tuple[str, str] | None:
    """(ip, mac) from one neighbour-table line, `ip neigh` text or /proc/net/arp; None without a MAC.

    "192.168.1.20 dev eth0 lladdr b8:27:eb:12:34:56 REACHABLE" or
    "192.168.1.20  0x1  0x2  b8:27:eb:12:34:56  *  eth0"
    """
    words = line.split()
    if len(words) < 4:
        return None
    if "lladdr" in words:
        mac = words[words.index("lladdr") + 1] if words.index("lladdr") + 1 < len(words) else ""
    else:
        mac = words[3]
    if not _MAC.match(mac) or mac == "00:00:00:00:00:00":
        return None
    return words[0], mac.lower()


def combine(evidence: Iterable[Evidence], group: str = "name") -> tuple[str | None, int]:
    """Best candidate and its confidence from (candidate, confidence) pieces.

    With group="family" candidates are OS names grouped by family; the most confident name of the
    winning family is returned (the specific "Ubuntu Linux" over a TTL's plain "Linux" when tied).
    """
    groups: dict[str, list[Evidence]] = {}
    for name, confidence in evidence:
        key = os_family(name) if group == "family" else name
        groups.setdefault(key, []).append((name, max(0, min(100, confidence))))
    if not groups:
        return None, 0
    scores: dict[str, float] = {}
    for key, items in groups.items():
        miss = 1.0
        for _, confidence in items:
            miss *= 1 - confidence / 100
        scores[key] = 1 - miss
    ranked = sorted(scores, key=lambda k: scores[k], reverse=True)
    best = ranked[0]
    runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
    confidence = round(100 * (scores[best] - 0.5 * runner_up))
    name = max(groups[best], key=lambda item: (item[1], len(item[0])))[0]
    return name, max(5, min(98, confidence))


# --- OS evidence ---------------------------------------------------------------------------------

_WINDOWS_PRODUCTS = re.compile(r"microsoft|iis|exchange|windows", re.I)
_VENDOR_OS: tuple[tuple[str, str, int], ...] = (
    ("raspberry pi", "Linux", 60), ("apple", "Apple macOS/iOS", 40), ("microsoft", "Microsoft Windows", 30),
    ("mikrotik", "MikroTik RouterOS", 70), ("cisco", "Cisco IOS", 50), ("juniper", "Juniper Junos", 50),
)


def ttl_evidence(ttl: int | None) -> Evidence | None:
    """Initial TTLs: 64 Linux/Unix-like, 128 Windows, 255 network devices (the observed value is ≤ the initial)."""
    if ttl is None or ttl <= 0:
        return None
    if ttl <= 64:
        return ("Linux", 40)
    if ttl <= 128:
        return ("Microsoft Windows", 45)
    return ("Network OS", 40)


def os_evidence(host: HostResult) -> list[Evidence]:
    found: list[Evidence] = []
    open_ports = {p.port for p in host.ports if p.state == "open"}
    for port in host.ports:
        hint = port.extra.get("os_hint")
        if isinstance(hint, str) and hint:
            found.append((hint, 80))
        elif port.product and _WINDOWS_PRODUCTS.search(port.product):
            found.append(("Microsoft Windows", 85))
    if 3389 in open_ports and open_ports & {135, 139, 445}:
        found.append(("Microsoft Windows", 75))
    elif 135 in open_ports:
        found.append(("Microsoft Windows", 60))
    elif 445 in open_ports or 3389 in open_ports:
        found.append(("Microsoft Windows", 35))  # Samba and xrdp exist
    if open_ports & {548, 62078}:
        found.append(("Apple macOS/iOS", 60))
    ttl = ttl_evidence(host.ttl)
    if ttl:
        found.append(ttl)
    vendor = (host.vendor or "").lower()
    for word, name, confidence in _VENDOR_OS:
        if word in vendor:
            found.append((name, confidence))
            break
    return found


# --- device-type evidence ------------------------------------------------------------------------

_PRINTER_TEXT = re.compile(r"printer|laserjet|jetdirect|officejet|deskjet|brother|epson|canon|xerox|lexmark|kyocera|"
                           r"ricoh|konica|\bipp\b", re.I)
_CAMERA_TEXT = re.compile(r"hikvision|dahua|ip ?camera|network camera|webcam|axis|\bnvr\b|\bdvr\b|rtsp", re.I)
_ROUTER_TEXT = re.compile(r"router|rompager|mikrotik|routeros|openwrt|luci|dd-wrt|ubiquiti|edgeos|zyxel|tp-link|"
                          r"netgear|fritz!?box|pfsense|opnsense|dnsmasq|asuswrt|linksys|draytek|cisco", re.I)
_NAS_TEXT = re.compile(r"synology|diskstation|qnap|truenas|freenas|readynas|openmediavault", re.I)
_VENDOR_TYPES: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (re.compile(r"hewlett|brother|seiko epson|canon|xerox|lexmark|kyocera|ricoh|konica", re.I), "printer", 45),
    (re.compile(r"hikvision|dahua|axis communications|hangzhou", re.I), "camera", 80),
    (re.compile(r"mikrotik|routerboard|ubiquiti|juniper|netgear|tp-link|zyxel|avm|draytek|aruba|cisco", re.I),
     "router", 55),
    (re.compile(r"synology|qnap", re.I), "nas", 80),
    (re.compile(r"espressif|tuya|sonos|nest labs|amazon technologies|shelly|raspberry pi|philips lighting|signify",
                re.I), "iot", 60),
    (re.compile(r"vmware|xensource|qemu|proxmox", re.I), "server", 50),
)
# nmap's device types (osclass type, service devicetype) → ours.
NMAP_DEVICE_TYPES = {
    "router": "router", "wap": "router", "broadband router": "router", "firewall": "router", "switch": "network",
    "printer": "printer", "print server": "printer", "webcam": "camera", "storage-misc": "nas", "phone": "mobile",
    "media device": "iot", "game console": "iot", "power-device": "iot", "specialized": "iot",
    "general purpose": "", "load balancer": "network", "security-misc": "network", "terminal server": "server",
}
_SERVER_PORTS = frozenset({21, 22, 25, 53, 80, 110, 143, 389, 443, 465, 587, 993, 995, 1433, 1521, 2049, 3306, 5432,
                           5672, 6379, 8080, 8443, 9200, 11211, 27017})


def _port_text(port: PortResult) -> str:
    http = port.extra.get("http")
    title = http.get("title", "") if isinstance(http, dict) else ""
    return " ".join(filter(None, (port.product, port.banner, str(title))))


def device_evidence(host: HostResult, os_name: str | None) -> list[Evidence]:
    found: list[Evidence] = []
    open_ports = {p.port for p in host.ports if p.state == "open"}
    text = " ".join(_port_text(p) for p in host.ports)
    family = os_family(os_name) if os_name else ""
    # printers
    if 9100 in open_ports:
        found.append(("printer", 70))
    if 515 in open_ports:
        found.append(("printer", 50))
    if 631 in open_ports:
        found.append(("printer", 35))  # CUPS also listens on desktops
    if _PRINTER_TEXT.search(text):
        found.append(("printer", 80))
    # cameras
    if open_ports & {554, 8554}:
        found.append(("camera", 60))
    if _CAMERA_TEXT.search(text):
        found.append(("camera", 80))
    # routers and network gear
    if 53 in open_ports and open_ports & {80, 443}:
        found.append(("router", 40))
    if _ROUTER_TEXT.search(text) and (open_ports & {53, 80, 443, 22, 23, 8291}):
        found.append(("router", 80))
    if family == "network":
        found.append(("router", 50))
    if _NAS_TEXT.search(text):
        found.append(("nas", 85))
    if open_ports & {1883, 5683, 8883}:
        found.append(("iot", 35))
    if 62078 in open_ports:
        found.append(("mobile", 80))
    # servers and workstations
    services = open_ports & _SERVER_PORTS
    if open_ports & {88, 389, 3268} and family == "windows":
        found.append(("server", 85))  # a domain controller
    if len(services) >= 2:
        found.append(("server", min(80, 40 + 10 * len(services))))
    elif len(services) == 1 and family in ("linux", "bsd"):
        found.append(("server", 35))
    if family == "windows" and not services and open_ports & {135, 139, 445, 3389}:
        found.append(("workstation", 50))
    if family == "apple" and 62078 not in open_ports:
        found.append(("workstation", 45))
    for port in host.ports:
        kind = NMAP_DEVICE_TYPES.get(str(port.extra.get("device_hint", "")).lower())
        if kind:
            found.append((kind, 70))
    vendor = host.vendor or ""
    for pattern, kind, confidence in _VENDOR_TYPES:
        if pattern.search(vendor):
            found.append((kind, confidence))
            break
    return found


async def profile_host(host: HostResult, *, resolve_dns: bool = True) -> None:
    """Fill hostname, vendor, os_guess, device_type and their confidences in place.

    Values already set with a higher confidence (nmap's OS match, an agent's report) are kept.
    """
    if resolve_dns and not host.hostname:
        host.hostname = await reverse_dns(host.ip)
    if host.mac and not host.vendor:
        host.vendor = mac_vendor(host.mac)
    os_name, os_confidence = combine(os_evidence(host), group="family")
    if os_name and os_confidence > host.os_confidence:
        host.os_guess, host.os_confidence = os_name, os_confidence
    kind, kind_confidence = combine(device_evidence(host, host.os_guess))
    if kind and kind_confidence > host.device_type_confidence:
        host.device_type, host.device_type_confidence = kind, kind_confidence

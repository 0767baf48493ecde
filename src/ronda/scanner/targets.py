"""Target specifications: addresses, CIDRs, ranges, hostnames, lists, exclusions."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator, Sequence

from ronda.scanner.types import ScanInputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOSTNAME_ONLY = re.compile(r".*[g-z]", re.IGNORECASE)  # letters beyond hex: a name, not an address range
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


class Targets:
    """The addresses to scan, in the order given, without duplicates or exclusions."""

    def __init__(self, addresses: list[Address], hostnames: dict[str, str]) -> None:
        self._addresses = addresses
        self.hostnames = hostnames  # ip -> the name the user gave for it

    def __iter__(self) -> Iterator[str]:
        return (str(a) for a in self._addresses)

    def __len__(self) -> int:
        return len(self._addresses)

    def __contains__(self, ip: object) -> bool:
        try:
            return ipaddress.ip_address(str(ip)) in set(self._addresses)
        except ValueError:
            return False

    @property
    def addresses(self) -> list[Address]:
        return list(self._addresses)

    @property
    def networks(self) -> list[Network]:
        """The smallest list of networks covering exactly these addresses."""
        v4 = [a for a in self._addresses if a.version == 4]
        v6 = [a for a in self._addresses if a.version == 6]
        nets: list[Network] = []
        nets.extend(ipaddress.collapse_addresses(ipaddress.IPv4Network(a) for a in v4))
        nets.extend(ipaddress.collapse_addresses(ipaddress.IPv6Network(a) for a in v6))
        return nets

    def __repr__(self) -> str:
        return f"Targets({len(self)} addresses)"


def _split(spec: str | Sequence[str]) -> list[str]:
    items = [spec] if isinstance(spec, str) else list(spec)
    words: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ScanInputError(f"bad target {item!r}", "target")
        words.extend(w for w in re.split(r"[,\s]+", item.strip()) if w)
    return words


def _range_bounds(word: str) -> tuple[Address, Address]:
    start_text, _, end_text = word.partition("-")
    try:
        start = ipaddress.ip_address(start_text)
    except ValueError:
        raise ScanInputError(f"bad target range {word!r}", "target") from None
    if end_text.isdigit() and start.version == 4:
        # "10.0.0.1-50": the last octet runs to 50
        last = int(end_text)
        if last > 255:
            raise ScanInputError(f"bad target range {word!r}", "target")
        end: Address = ipaddress.IPv4Address((int(start) & ~0xFF) | last)
    else:
        try:
            end = ipaddress.ip_address(end_text)
        except ValueError:
            raise ScanInputError(f"bad target range {word!r}", "target") from None
    if end.version != start.version or int(end) < int(start):
        raise ScanInputError(f"target range {word!r} runs backwards", "target")
    return start, end


def _range(word: str, budget: int) -> list[Address]:
    start, end = _range_bounds(word)
    count = int(end) - int(start) + 1
    if count > budget:
        raise ScanInputError(f"target range {word!r} has {count} addresses, more than the limit", "target")
    cls = type(start)
    return [cls(i) for i in range(int(start), int(end) + 1)]


def _expand(word: str, budget: int, hostnames: dict[str, str], whole: bool = False) -> list[Address]:
    """One word of a target list → its addresses (``budget`` bounds what may be materialised)."""
    text = word.strip().strip("[]")
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ScanInputError(f"bad network {word!r}", "target") from None
        if net.num_addresses > budget + 2:
            raise ScanInputError(
                f"network {net} has {net.num_addresses} addresses, more than the limit of {budget}", "target"
            )
        # IPv4 networks larger than /31 skip their network and broadcast addresses
        if whole or net.version == 6 or net.prefixlen >= 31:
            return list(net)
        return list(net.hosts())
    try:
        return [ipaddress.ip_address(text)]
    except ValueError:
        pass
    if "-" in text and (text[0].isdigit() or ":" in text.split("-")[0]):
        try:
            ipaddress.ip_address(text.partition("-")[0])
            return _range(text, budget)
        except ValueError:
            pass
    if not _HOSTNAME.match(text.lower()) or text.replace(".", "").isdigit():
        raise ScanInputError(f"unparseable target {word!r}", "target")
    return _resolve(text, hostnames)


def _resolve(name: str, hostnames: dict[str, str]) -> list[Address]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ScanInputError(f"cannot resolve host name {name!r}", "target") from None
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
            hostnames.setdefault(str(address), name)
    # like nmap: a name stands for its first address (IPv4 preferred)
    found.sort(key=lambda a: a.version)
    return found[:1]


def _exclusions(exclude: Sequence[str]) -> list[Network]:
    """Exclusions as networks (never expanded address by address: excluding a /8 is cheap)."""
    nets: list[Network] = []
    for word in _split(exclude):
        text = word.strip().strip("[]")
        try:
            if "/" in text:
                nets.append(ipaddress.ip_network(text, strict=False))
                continue
            if "-" in text and not _HOSTNAME_ONLY.match(text):
                first, last = _range_bounds(text)
                nets.extend(ipaddress.summarize_address_range(first, last))  # type: ignore[arg-type]
                continue
            nets.extend(ipaddress.ip_network(a) for a in _expand(text, 1, {}))
        except (ValueError, TypeError, ScanInputError):
            raise ScanInputError(f"bad exclusion {word!r}", "exclude") from None
    return nets


def _excluded_size(nets: list[Network]) -> int:
    return min(sum(n.num_addresses for n in nets), 1 << 24)


def parse_targets(spec: str | Sequence[str], exclude: Sequence[str] = (), max_hosts: int = 65536) -> Targets:
    """Parse targets and exclusions; ScanInputError (field ``target``/``exclude``) on anything unusable."""
    words = _split(spec)
    if not words:
        raise ScanInputError("no targets given", "target")
    hostnames: dict[str, str] = {}
    excluded = _exclusions(exclude)
    seen: set[Address] = set()
    ordered: list[Address] = []
    for word in words:
        for address in _expand(word, max_hosts + _excluded_size(excluded), hostnames):
            if address in seen or (excluded and any(address in net for net in excluded)):
                continue
            seen.add(address)
            ordered.append(address)
            if len(ordered) > max_hosts:
                raise ScanInputError(f"the targets have more than {max_hosts} addresses", "target")
    if not ordered:
        raise ScanInputError("every target address is excluded", "target")
    return Targets(ordered, {ip: name for ip, name in hostnames.items() if ipaddress.ip_address(ip) in seen})

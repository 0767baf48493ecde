"""Port specifications: lists, ranges, ``top N`` (by real-world open frequency), ``all``."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ronda.scanner.types import ScanInputError

MAX_PORT = 65535
_TOP = re.compile(r"^top[\s:=-]*(\d+)$")


@cache
def ranked_ports() -> tuple[int, ...]:
    """Every TCP port, most frequently open first (shipped ranking, then the rest in numeric order)."""
    text = resources.files("ronda.scanner").joinpath("data/top_tcp_ports.txt").read_text("ascii")
    ranked: list[int] = []
    seen: set[int] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        for word in line.split():
            port = int(word)
            if 1 <= port <= MAX_PORT and port not in seen:
                seen.add(port)
                ranked.append(port)
    ranked.extend(sorted(set(range(1, MAX_PORT + 1)) - seen))
    return tuple(ranked)


def top_ports(count: int) -> list[int]:
    if count < 1 or count > MAX_PORT:
        raise ScanInputError(f"top N needs 1 <= N <= {MAX_PORT}, got {count}", "ports")
    return list(ranked_ports()[:count])


def _port(word: str, spec: str) -> int:
    if not word.isdigit():
        raise ScanInputError(f"bad port {word!r} in {spec!r}", "ports")
    value = int(word)
    if not 1 <= value <= MAX_PORT:
        raise ScanInputError(f"port {value} is outside 1-{MAX_PORT}", "ports")
    return value


def parse_ports(spec: str) -> list[int]:
    """``"22,80,8000-8100"``, ``"top 100"``/``"top:100"``, ``"all"``/``"1-65535"``/``"-"`` → sorted unique ports.

    Parts can be mixed: ``"top 100, 8443"``. ``T:`` prefixes (nmap style) are accepted for TCP.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ScanInputError("port list is empty", "ports")
    chosen: set[int] = set()
    for raw in _parts(spec):
        part = raw.removeprefix("t:")
        if part in ("all", "-", "*"):
            chosen.update(range(1, MAX_PORT + 1))
            continue
        top = _TOP.match(part)
        if top:
            chosen.update(top_ports(int(top.group(1))))
            continue
        if "-" in part:
            low_text, _, high_text = part.partition("-")
            low = _port(low_text, spec) if low_text else 1
            high = _port(high_text, spec) if high_text else MAX_PORT
            if low > high:
                raise ScanInputError(f"port range {part!r} runs backwards", "ports")
            chosen.update(range(low, high + 1))
            continue
        chosen.add(_port(part, spec))
    if not chosen:
        raise ScanInputError("port list is empty", "ports")
    return sorted(chosen)


def _parts(spec: str) -> list[str]:
    """Split on commas; inside a part, ``top 100`` keeps its space, other whitespace separates ports."""
    parts: list[str] = []
    for chunk in spec.strip().lower().split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        if _TOP.match(chunk):
            parts.append(chunk)
        else:
            parts.extend(chunk.split())
    return parts


def ranked_order(ports: list[int]) -> list[int]:
    """The same ports, most frequently open first (probe likely-open ports early)."""
    if len(ports) == MAX_PORT:
        return list(ranked_ports())
    return sorted(ports, key=_rank().__getitem__)


@cache
def _rank() -> dict[int, int]:
    return {p: i for i, p in enumerate(ranked_ports())}

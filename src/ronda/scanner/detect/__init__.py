"""Service detection for open TCP ports.

`detect_services(ip, ports, timeout=...)` identifies each port within `timeout` seconds (the budget for the
whole identification of one port: connect, passive banner, probes, TLS). Nothing raises: a port that
refuses, resets or stays silent still gets its IANA name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from ronda.scanner.cpe import cpes_for_product
from ronda.scanner.detect.banners import Ident
from ronda.scanner.detect.conn import Deadline, printable
from ronda.scanner.detect.iana import iana_name
from ronda.scanner.detect.probes import CLIENT_FIRST, SECURE_NAMES, identify_banner, plain_identify, tls_identify
from ronda.scanner.detect.tls import IMPLICIT_TLS
from ronda.scanner.types import PortResult

__all__ = ["detect_services", "iana_name", "identify_port", "result_from_banner"]

logger = logging.getLogger(__name__)
MAX_PROBED_PORTS = 512  # per host and call

# Which extra key holds a protocol's details (PortResult.extra["http"], ["ssh"], ...).
_DETAIL_KEY = {"ms-wbt-server": "rdp", "microsoft-ds": "smb"}
_NETWORK_ERRORS = (TimeoutError, ConnectionError, OSError, ssl.SSLError, EOFError)


async def detect_services(
    ip: str, ports: list[int], *, timeout: float, concurrency: int = 50  # noqa: ASYNC109 - a per-port budget
) -> dict[int, PortResult]:
    """Identify every port of `ports` on `ip` (at most `concurrency` at once); keyed by port."""
    gate = asyncio.Semaphore(max(1, concurrency))
    ordered = sorted(set(ports))
    skipped: list[int] = []
    if len(ordered) > MAX_PROBED_PORTS:
        # Hosts that accept every port (tarpits, some firewalls) would hold detection for ages: probe the
        # ports that mean something, name the rest.
        ranked = sorted(ordered, key=lambda p: (p not in CLIENT_FIRST and iana_name(p) is None, p))
        keep = set(ranked[:MAX_PROBED_PORTS])
        skipped = [p for p in ordered if p not in keep]
        ordered = [p for p in ordered if p in keep]

    async def one(port: int) -> PortResult:
        async with gate:
            try:
                return await identify_port(ip, port, timeout=timeout)
            except Exception as exc:  # a parser bug on one odd reply must not lose the whole host
                logger.warning("service detection failed on %s:%s: %r", ip, port, exc)
                return PortResult(port=port, service=iana_name(port), extra={"detection_error": type(exc).__name__})

    results = await asyncio.gather(*(one(port) for port in ordered))
    found = {result.port: result for result in results}
    for port in skipped:
        found[port] = PortResult(port=port, service=iana_name(port), extra={"detection": "skipped: too many ports"})
    return dict(sorted(found.items()))


async def identify_port(ip: str, port: int, *, timeout: float) -> PortResult:  # noqa: ASYNC109
    result = PortResult(port=port, service=iana_name(port))
    budget = max(0.2, float(timeout))
    deadline = Deadline(budget)
    ident: Ident | None = None
    banner = b""
    tls: dict[str, Any] | None = None
    # A hard ceiling on top of the per-step deadlines: detection never outlives its budget by much.
    with contextlib.suppress(*_NETWORK_ERRORS):
        async with asyncio.timeout(budget + 0.5):
            if port in IMPLICIT_TLS:
                found = await tls_identify(ip, port, deadline, budget)
                if found is not None:
                    ident, banner, tls = found[0], found[1], dict(found[2])
            if tls is None and not deadline.expired:
                ident, banner, silent = await plain_identify(ip, port, deadline, budget)
                wants_tls = ident is not None and ident.extra.get("tls_required") is True
                if ((ident is None and silent) or wants_tls) and port not in IMPLICIT_TLS and not deadline.expired:
                    # Silent to a passive wait and to HTTP, or an HTTPS-only reply: TLS on an unusual port?
                    found = await tls_identify(ip, port, deadline, budget)
                    if found is not None:
                        ident, banner, tls = found[0], found[1], dict(found[2])
    _fill(result, ident, banner, tls)
    return result


def result_from_banner(port: int, banner: bytes) -> PortResult:
    """What detection makes of a banner already in hand (a stored one, a packet capture, a test)."""
    result = PortResult(port=port, service=iana_name(port))
    _fill(result, identify_banner(banner), banner, None)
    return result


def _fill(result: PortResult, ident: Ident | None, banner: bytes, tls: dict[str, Any] | None) -> None:
    if banner:
        result.banner = printable(banner) or None
    if ident is not None and ident.service == "mysql" and ident.extra.get("server_version"):
        result.banner = str(ident.extra["server_version"])  # the handshake around it is binary noise
    if tls is not None:
        result.extra["tls"] = tls
        result.service = IMPLICIT_TLS.get(result.port) or "ssl"
    if ident is None:
        return
    details = dict(ident.extra)
    os_hint = details.pop("os_hint", None)
    if os_hint:
        result.extra["os_hint"] = os_hint
    result.extra[_DETAIL_KEY.get(ident.service, ident.service)] = details
    result.service = SECURE_NAMES.get(ident.service, ident.service) if tls is not None else ident.service
    if tls is None and ident.service == "http" and result.port in (8080, 3128):
        result.service = "http-proxy" if "proxy" in str(details.get("server", "")).lower() else "http"
    result.product = ident.product
    result.version = ident.version
    result.cpe = cpes_for_product(ident.product, ident.version)

"""The nmap engine: run nmap (connect scan, version detection, OS detection when root) and parse its XML.

nmap writes XML on stdout as it goes (`-oX -`): `<taskprogress>` elements every second (`--stats-every`)
and each `<host>` once its group is done, so events flow while it runs. Cancelling kills the process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil

# nmap's own output; the banners inside are XML-escaped by nmap, and expat refuses entity bombs.
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ronda.scanner.cpe import cpes_for_product, uri_to_fs
from ronda.scanner.detect.banners import os_hint_from
from ronda.scanner.profiles import PROFILES
from ronda.scanner.profiling import NMAP_DEVICE_TYPES, profile_host
from ronda.scanner.targets import Targets
from ronda.scanner.types import HostResult, PortResult, ScanEvent, ScanOptions, ScanResult

EventCallback = Callable[[ScanEvent], None]

# Where each nmap phase sits on our 0-100 progress bar.
_PHASES: dict[str, tuple[float, float]] = {
    "ping scan": (0.0, 5.0),
    "parallel dns resolution": (5.0, 1.0),
    "connect scan": (6.0, 64.0),
    "syn stealth scan": (6.0, 64.0),
    "service scan": (70.0, 25.0),
    "os detection": (95.0, 3.0),
    "nse": (98.0, 1.0),
}


def nmap_path() -> str | None:
    return shutil.which("nmap")


def nmap_available() -> bool:
    return nmap_path() is not None


def port_spec(ports: list[int]) -> str:
    """Compress a port list into nmap's `-p` syntax: "22,80,8000-8100"."""
    ordered = sorted(set(ports))
    spans: list[str] = []
    start = prev = ordered[0] if ordered else 0
    for port in [*ordered[1:], -1]:
        if port == prev + 1:
            prev = port
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = port
    return ",".join(spans)


def build_args(options: ScanOptions, ports: list[int], *, ipv6: bool, root: bool) -> list[str]:
    profile = PROFILES.get(options.profile) or PROFILES["normal"]
    detection = profile.detection if options.enable_service_detection is None else options.enable_service_detection
    profiling = profile.profiling if options.enable_profiling is None else options.enable_profiling
    args = ["-sT", "-n", "-oX", "-", "--stats-every", "1s", "-p", port_spec(ports), "-iL", "-"]
    args.append("-T2" if options.profile == "stealth" else "-T4")
    if ipv6:
        args.append("-6")
    if not options.discovery:
        args.append("-Pn")
    if detection:
        args.append("-sV")
        if options.profile == "quick":
            args.append("--version-light")
    if profiling and root:
        args += ["-O", "--osscan-limit"]
    rate = options.max_rate if options.max_rate is not None else profile.max_rate
    if rate:
        args += ["--max-rate", f"{rate:g}"]
    if options.max_concurrent:
        args += ["--max-parallelism", str(options.max_concurrent)]
    timeout_ms = options.timeout_ms or profile.timeout_ms
    args += ["--max-rtt-timeout", f"{max(timeout_ms, 5)}ms"]
    retries = options.retries if options.retries is not None else profile.retries
    args += ["--max-retries", str(retries)]
    return args


def _version(raw: str | None) -> str | None:
    """nmap's version "8.9p1 Ubuntu 3ubuntu0.6" → "8.9p1"; "9.6.0 or later" stays whole."""
    if not raw:
        return None
    first, _, rest = raw.partition(" ")
    return first if rest and os_hint_from(rest) else raw


def parse_port(element: ET.Element) -> PortResult | None:
    state = element.find("state")
    if state is None or state.get("state") != "open":
        return None
    result = PortResult(port=int(element.get("portid", "0")), protocol=element.get("protocol", "tcp"))
    service = element.find("service")
    if service is None:
        return result
    result.service = service.get("name") or None
    if service.get("tunnel") == "ssl" and result.service == "http":
        result.service = "https"
    result.product = service.get("product") or None
    result.version = _version(service.get("version"))
    details: dict[str, Any] = {k: service.get(k) for k in ("version", "extrainfo", "ostype", "method", "conf",
                                                           "tunnel", "devicetype", "hostname") if service.get(k)}
    cpes = [fs for fs in (uri_to_fs(c.text or "") for c in service.findall("cpe")) if fs]
    details["cpe"] = cpes
    result.extra["nmap"] = details
    # nmap's application CPEs when it has them (its OS ones stay in extra: a versionless
    # "o:linux:linux_kernel" would match every kernel CVE); else our table's names for the product.
    names = [c for c in cpes if c.startswith("cpe:2.3:a:")]
    clean_version = result.version if result.version and " " not in result.version else None
    result.cpe = names or cpes_for_product(result.product, clean_version)
    hint = service.get("ostype") or os_hint_from(service.get("extrainfo") or "")
    if hint:
        result.extra["os_hint"] = hint
    if service.get("devicetype"):
        result.extra["device_hint"] = service.get("devicetype")
    banner = " ".join(filter(None, (service.get("product"), service.get("version"), service.get("extrainfo"))))
    result.banner = banner[:512] or None
    return result


def parse_host(element: ET.Element, *, assumed_up: bool) -> HostResult | None:
    """One `<host>`; None for a host that is down, or only assumed up (-Pn) and answered nothing."""
    status = element.find("status")
    if status is None or status.get("state") != "up":
        return None
    ip = mac = vendor = None
    for address in element.findall("address"):
        if address.get("addrtype") in ("ipv4", "ipv6"):
            ip = address.get("addr")
        elif address.get("addrtype") == "mac":
            mac, vendor = address.get("addr"), address.get("vendor")
    if ip is None:
        return None
    host = HostResult(ip=ip, mac=mac, vendor=vendor)
    hostname = element.find("hostnames/hostname")
    if hostname is not None:
        host.hostname = hostname.get("name")
    ttl = int(status.get("reason_ttl") or 0)
    host.ttl = ttl or None
    times = element.find("times")
    if times is not None and times.get("srtt"):
        host.rtt_ms = round(int(times.get("srtt", "0")) / 1000, 3)
    ports_element = element.find("ports")
    answered = False
    if ports_element is not None:
        for port_element in ports_element.findall("port"):
            state = port_element.find("state")
            answered = answered or (state is not None and state.get("state") in ("open", "closed"))
            result = parse_port(port_element)
            if result is not None:
                host.ports.append(result)
        answered = answered or any(e.get("state") == "closed" for e in ports_element.findall("extraports"))
    if assumed_up and status.get("reason") == "user-set" and not answered:
        return None
    _apply_os(host, element)
    host.ports.sort(key=lambda p: p.port)
    return host


def _apply_os(host: HostResult, element: ET.Element) -> None:
    matches = element.findall("os/osmatch")
    if not matches:
        return
    best = max(matches, key=lambda m: int(m.get("accuracy") or 0))
    host.os_guess = best.get("name")
    host.os_confidence = min(100, int(best.get("accuracy") or 0))
    osclass = best.find("osclass")
    kind = NMAP_DEVICE_TYPES.get((osclass.get("type") or "").lower(), "") if osclass is not None else ""
    if kind:
        host.device_type = kind
        host.device_type_confidence = round(host.os_confidence * 0.9)


class _Progress:
    def __init__(self, on_event: EventCallback | None, hosts_total: int, ports: int, share: tuple[float, float]):
        self.on_event = on_event
        self.hosts_total = hosts_total
        self.ports = ports
        self.base, self.span = share  # this nmap run's slice of the bar (IPv4 and IPv6 run separately)
        self.hosts_found = 0
        self.ports_found = 0

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(ScanEvent(kind, data))

    def task(self, element: ET.Element) -> None:
        start, width = _PHASES.get((element.get("task") or "").lower(), (0.0, 0.0))
        percent = start + width * float(element.get("percent") or 0) / 100
        remaining = element.get("remaining")
        self.progress(self.base + self.span * percent / 100, float(remaining) if remaining else None)

    def progress(self, percent: float, eta: float | None) -> None:
        self.emit("progress", {
            "progress_percent": round(min(100.0, percent), 1),
            "hosts_done": self.hosts_found,  # nmap reports hosts as they finish, down ones not at all: a floor
            "hosts_total": self.hosts_total, "probes_sent": 0, "hosts_found": self.hosts_found,
            "ports_found": self.ports_found, "eta_seconds": eta,
        })

    def host(self, host: HostResult) -> None:
        self.hosts_found += 1
        self.ports_found += len(host.ports)
        self.emit("host_found", host.summary())
        for port in host.ports:
            self.emit("port_found", {"ip": host.ip, "port": port.port, "protocol": port.protocol,
                                     "service": port.service, "product": port.product, "version": port.version})


async def _run_once(args: list[str], targets: list[str], progress: _Progress, assumed_up: bool) -> list[HostResult]:
    binary = nmap_path()
    if binary is None:
        raise RuntimeError("nmap is not installed")
    proc = await asyncio.create_subprocess_exec(
        binary, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    hosts: list[HostResult] = []
    stderr_task: asyncio.Future[bytes] | None = None
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(("\n".join(targets) + "\n").encode())
        await proc.stdin.drain()
        proc.stdin.close()
        parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        broken: ET.ParseError | None = None
        async for line in proc.stdout:
            if broken is not None:
                continue  # drain, so nmap can finish and report its error
            try:
                parser.feed(line)
            except ET.ParseError as exc:
                broken = exc
                continue
            for event in parser.read_events():
                item: object = event[-1] if isinstance(event, tuple) else event
                if not isinstance(item, ET.Element):
                    continue
                element = item
                if element.tag == "taskprogress":
                    progress.task(element)
                elif element.tag == "host":
                    host = parse_host(element, assumed_up=assumed_up)
                    element.clear()
                    if host is not None:
                        hosts.append(host)
                        progress.host(host)
        errors = await stderr_task
        code = await proc.wait()
        if code != 0:
            tail = errors.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {code}"]
            raise RuntimeError(f"nmap failed: {tail[0]}")
        if broken is not None:
            raise RuntimeError(f"nmap wrote XML we cannot parse: {broken}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        if stderr_task is not None and not stderr_task.done():
            stderr_task.cancel()
    return hosts


async def run_nmap(
    options: ScanOptions, targets: Targets, ports: list[int], on_event: EventCallback | None = None
) -> ScanResult:
    """Scan with nmap; results in our types (nmap's CPEs converted to CPE 2.3, its best OS match)."""
    started_at = datetime.now(UTC)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    # nmap scans one address family per run.
    groups = [(v, [str(n) for n in targets.networks if n.version == v]) for v in (4, 6)]
    groups = [(v, names) for v, names in groups if names]
    hosts: list[HostResult] = []
    for index, (version, names) in enumerate(groups):
        share = (100.0 * index / len(groups), 100.0 / len(groups))
        progress = _Progress(on_event, len(targets), len(ports), share)
        progress.hosts_found, progress.ports_found = len(hosts), sum(len(h.ports) for h in hosts)
        args = build_args(options, ports, ipv6=version == 6, root=root)
        hosts += await _run_once(args, names, progress, assumed_up=not options.discovery)
    profile = PROFILES.get(options.profile) or PROFILES["normal"]
    profiling = profile.profiling if options.enable_profiling is None else options.enable_profiling
    if profiling:
        await asyncio.gather(*(profile_host(host, resolve_dns=True) for host in hosts))
    if on_event is not None:
        on_event(ScanEvent("progress", {
            "progress_percent": 100.0, "hosts_done": len(targets), "hosts_total": len(targets),
            "probes_sent": len(targets) * len(ports), "hosts_found": len(hosts),
            "ports_found": sum(len(h.ports) for h in hosts), "eta_seconds": 0,
        }))
    return ScanResult(
        hosts=sorted(hosts, key=lambda h: ipaddress.ip_address(h.ip)),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        hosts_total=len(targets),
        ports_per_host=len(ports),
        probes_sent=len(targets) * len(ports),  # nmap does not report its probe count; this is the port-probe floor
        engine="nmap",
    )

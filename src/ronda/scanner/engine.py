"""run_scan: validate, discover hosts, sweep ports (threads or one process per core), detect, profile."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ronda.scanner.discovery import discover
from ronda.scanner.ports import parse_ports, ranked_order
from ronda.scanner.profiles import PROFILES
from ronda.scanner.sweep import Sweeper, SweepJob, job_to_json, raise_nofile
from ronda.scanner.targets import Targets, parse_targets
from ronda.scanner.types import HostResult, PortResult, Profile, ScanEvent, ScanInputError, ScanOptions, ScanResult

EventCallback = Callable[[ScanEvent], None]
T = TypeVar("T")
# below this many probes one in-process thread beats starting worker processes
PROCESS_THRESHOLD = 20000
PROGRESS_INTERVAL = 0.25
_FINISHING_HOSTS = 16  # hosts in service detection / profiling at once
log = logging.getLogger("ronda.scanner")
_DISCOVERY_SHARE, _SWEEP_SHARE = 5.0, 90.0  # percent of the progress bar per phase


@dataclass(slots=True)
class Plan:
    options: ScanOptions
    profile: Profile
    targets: Targets
    ports: list[int]
    timeout: float  # probe timeout ceiling (s)
    max_concurrent: int
    max_rate: float | None
    retries: int
    detection: bool
    profiling: bool
    processes: int


def _bounded(value: float | None, name: str, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScanInputError(f"{name} must be between {low:g} and {high:g}", name)


def plan_scan(options: ScanOptions) -> Plan:
    """Check every option and resolve targets and ports (may resolve host names: call off the loop)."""
    profile = PROFILES.get(options.profile)
    if profile is None:
        raise ScanInputError(f"unknown profile {options.profile!r}; choose from {', '.join(PROFILES)}", "profile")
    if options.engine not in ("builtin", "nmap"):
        raise ScanInputError(f"unknown engine {options.engine!r}; choose builtin or nmap", "engine")
    _bounded(options.timeout_ms, "timeout_ms", 1, 60000)
    _bounded(options.max_concurrent, "max_concurrent", 1, 65536)
    _bounded(options.max_rate, "max_rate", 0.1, 1_000_000)
    _bounded(options.retries, "retries", 0, 10)
    _bounded(options.processes, "processes", 1, 256)
    _bounded(options.max_hosts, "max_hosts", 1, 1 << 24)
    ports = parse_ports(options.ports if options.ports is not None else profile.ports)
    targets = parse_targets(options.targets, options.exclude, options.max_hosts)
    return Plan(
        options=options,
        profile=profile,
        targets=targets,
        ports=ports,
        timeout=(options.timeout_ms or profile.timeout_ms) / 1000,
        max_concurrent=options.max_concurrent or profile.max_concurrent,
        max_rate=options.max_rate if options.max_rate is not None else profile.max_rate,
        retries=options.retries if options.retries is not None else profile.retries,
        detection=profile.detection if options.enable_service_detection is None else options.enable_service_detection,
        profiling=profile.profiling if options.enable_profiling is None else options.enable_profiling,
        processes=options.processes or os.cpu_count() or 1,
    )


async def _in_thread(work: Callable[[], T], stop: threading.Event) -> T:
    """Run blocking ``work`` in a thread; on cancellation set ``stop`` and wait for it to clean up."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)  # type: ignore[arg-type]

    def target() -> None:
        try:
            value = work()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    thread = threading.Thread(target=target, name="ronda-scan", daemon=True)
    thread.start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        stop.set()
        thread.join(5)  # the loops poll at least every 0.1 s
        raise


class _Scan:
    """The state of one run: hosts found so far, progress, events."""

    def __init__(self, plan: Plan, on_event: EventCallback | None) -> None:
        self.plan = plan
        self.on_event = on_event
        self.hosts: dict[str, HostResult] = {}
        self.open: dict[str, list[tuple[int, float]]] = {}
        self.sweep_total = 0
        self.settled: dict[int, int] = {}
        self.sent: dict[int, int] = {}
        self.discovery_sent = 0
        self.hosts_done = 0
        self.phase_base = 0.0
        self.started = time.monotonic()
        self.last_progress = 0.0
        self.finishers: list[asyncio.Task[None]] = []
        self.parts_pending: dict[str, int] = {}
        self.finishing = asyncio.Semaphore(_FINISHING_HOSTS)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(ScanEvent(kind, data))

    def host_up(self, ip: str, rtt_ms: float | None = None, ttl: int | None = None, mac: str | None = None) -> None:
        if ip in self.hosts:
            return
        host = HostResult(ip=ip, hostname=self.plan.targets.hostnames.get(ip), mac=mac, ttl=ttl, rtt_ms=rtt_ms)
        self.hosts[ip] = host
        if self.on_event is not None:
            self.emit("host_found", host.summary())

    def percent(self) -> float:
        if self.sweep_total:
            swept = min(1.0, sum(self.settled.values()) / self.sweep_total)
            return min(99.0, self.phase_base + _SWEEP_SHARE * swept)
        return min(99.0, self.phase_base)

    def progress(self, force: bool = False, percent: float | None = None) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < PROGRESS_INTERVAL:
            return
        self.last_progress = now
        value = self.percent() if percent is None else percent
        elapsed = now - self.started
        eta = elapsed * (100 - value) / value if value >= 2 else None
        self.emit(
            "progress",
            {
                "progress_percent": round(value, 1),
                "hosts_done": self.hosts_done,
                "hosts_total": len(self.plan.targets),
                "probes_sent": self.probes_sent,
                "hosts_found": len(self.hosts),
                "ports_found": sum(len(p) for p in self.open.values()),
                "eta_seconds": round(eta, 1) if eta is not None else None,
            },
        )

    @property
    def probes_sent(self) -> int:
        return self.discovery_sent + sum(self.sent.values())

    def line(self, worker: int, text: str) -> None:
        """One result line from a sweep worker (see ronda.scanner.sweep)."""
        parts = text.split()
        if not parts:
            return
        kind = parts[0]
        if kind == "O":
            ip, port, rtt = parts[1], int(parts[2]), float(parts[3])
            self.host_up(ip, rtt_ms=rtt or None)
            self.open.setdefault(ip, []).append((port, rtt))
        elif kind == "U":
            self.host_up(parts[1], rtt_ms=float(parts[2]) or None)
        elif kind in ("P", "E"):
            self.settled[worker], self.sent[worker] = int(parts[1]), int(parts[2])
            self.progress()
        elif kind == "D":
            ip = parts[1]
            left = self.parts_pending.get(ip, 1) - 1
            self.parts_pending[ip] = left
            if left <= 0:
                self.hosts_done += 1
                # nothing to detect or profile: no task (a /16 would otherwise make 65,536 of them)
                if ip in self.hosts and (self.open.get(ip) or self.plan.profiling):
                    self.finishers.append(asyncio.get_running_loop().create_task(self.finish_host(ip)))

    async def finish_host(self, ip: str) -> None:
        """Service detection and profiling for one host whose sweep is over, then its port events."""
        async with self.finishing:  # a few hosts at a time: each one opens up to 50 connections
            await self._finish_host(ip)

    async def _finish_host(self, ip: str) -> None:
        host = self.hosts[ip]
        ports = sorted(p for p, _ in self.open.get(ip, []))
        results: dict[int, PortResult] = {}
        # imported here: detection pulls in ssl and friends, which a bare sweep does not need
        from ronda.scanner.detect import detect_services
        from ronda.scanner.detect.iana import iana_name
        from ronda.scanner.profiling import profile_host

        if ports and self.plan.detection:
            try:
                results = await detect_services(ip, ports, timeout=max(2.0, self.plan.timeout * 2))
            except Exception:  # one host's detection must not sink the scan: its ports stay, unnamed
                log.exception("service detection failed for %s", ip)
        host.ports = [results.get(p) or PortResult(port=p) for p in ports]
        for result in host.ports:
            result.state = "open"
            if result.service is None:
                result.service = iana_name(result.port, "tcp")
        if self.plan.profiling:
            try:
                await profile_host(host, resolve_dns=True)
            except Exception:
                log.exception("profiling failed for %s", ip)
        for result in host.ports:
            self.emit(
                "port_found",
                {
                    "ip": ip,
                    "port": result.port,
                    "protocol": result.protocol,
                    "service": result.service,
                    "product": result.product,
                    "version": result.version,
                },
            )


def _shares(plan: Plan, hosts: list[str], ports: list[int]) -> list[tuple[list[str], list[int]]]:
    """Split the sweep between workers: by ports (interleaved, so each gets likely-open ones) or,
    with fewer ports than workers, by hosts."""
    total = len(hosts) * len(ports)
    workers = max(1, min(plan.processes, total // 5000 or 1))
    if total < PROCESS_THRESHOLD or workers == 1:
        return [(hosts, ports)]
    if len(ports) >= workers:
        return [(hosts, ports[i::workers]) for i in range(workers)]
    return [(hosts[i::workers], ports) for i in range(workers) if hosts[i::workers]]


def _job(plan: Plan, hosts: list[str], ports: list[int], share: float, rtts: dict[str, float]) -> SweepJob:
    limit = max(64, raise_nofile() - 128)
    concurrent = max(1, int(min(plan.max_concurrent, limit) * share))
    return SweepJob(
        hosts=hosts,
        ports=ports,
        max_concurrent=concurrent,
        per_host=max(1, int(min(256, plan.max_concurrent) * share)) if plan.max_rate is None else concurrent,
        timeout=plan.timeout,
        min_timeout=min(0.1, plan.timeout),
        initial_timeout=min(1.0, plan.timeout),
        retries=plan.retries,
        max_rate=plan.max_rate * share if plan.max_rate is not None else None,
        initial_rtt={ip: rtts[ip] for ip in hosts if ip in rtts},
    )


async def _sweep_in_thread(scan: _Scan, job: SweepJob) -> None:
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def emit(text: str) -> None:
        loop.call_soon_threadsafe(scan.line, 0, text)

    def work() -> None:
        sweeper = Sweeper(job, emit)
        sweeper.stop = stop
        sweeper.run()

    await _in_thread(work, stop)
    await asyncio.sleep(0)  # let the last lines queued by the thread run


# the worker runs sweep.py as a plain script (stdlib only): no package imports, no site, fast start
_WORKER = [sys.executable, "-I", "-S", str(Path(__file__).with_name("sweep.py"))]


async def _sweep_in_processes(scan: _Scan, jobs: list[SweepJob]) -> None:
    procs: list[asyncio.subprocess.Process] = []
    try:
        for job in jobs:
            proc = await asyncio.create_subprocess_exec(
                *_WORKER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(job_to_json(job).encode())
            proc.stdin.close()

        async def pump(index: int, proc: asyncio.subprocess.Process) -> None:
            assert proc.stdout is not None and proc.stderr is not None
            ended = False
            rest = b""
            while chunk := await proc.stdout.read(1 << 16):  # many lines per wake-up
                *lines, rest = (rest + chunk).split(b"\n")
                for raw in lines:
                    text = raw.decode()
                    ended = ended or text.startswith("E ")
                    scan.line(index, text)
            errors = await proc.stderr.read()
            code = await proc.wait()
            if code != 0 or not ended:
                tail = errors.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {code}"]
                raise RuntimeError(f"scan worker failed: {tail[0]}")

        await asyncio.gather(*(pump(i, p) for i, p in enumerate(procs)))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
        for proc in procs:
            if proc.returncode is None:
                await asyncio.shield(proc.wait())


async def _discovery_ticker(scan: _Scan, count: int, probe_timeout: float) -> None:
    """Progress while discovery runs: an estimate from its pacing (10,000 echoes/s) and timeouts."""
    wait = min(probe_timeout, 2.0)
    expected = count / 10000 + 2 * wait + count * 2 / 2048 * wait / 4
    begun = time.monotonic()
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL * 2)
        share = min(0.95, (time.monotonic() - begun) / expected)
        scan.progress(force=True, percent=_DISCOVERY_SHARE * share)


async def run_scan(options: ScanOptions, on_event: EventCallback | None = None) -> ScanResult:
    """Scan ``options.targets``; ``on_event`` gets host_found, port_found and progress events.

    host_found comes when a host is first seen (discovery or its first answer); port_found once the
    host's sweep, service detection and profiling are over (so it carries service, product, version).
    Cancelling the task stops every probe, worker thread and process and closes every socket.
    """
    plan = await asyncio.to_thread(plan_scan, options)
    if options.engine == "nmap":
        from ronda.scanner.nmap_engine import nmap_available, run_nmap

        if not nmap_available():
            raise ScanInputError("nmap is not installed on this machine", "engine")
        return await run_nmap(options, plan.targets, plan.ports, on_event)
    started_at = datetime.now(UTC)
    raise_nofile()
    scan = _Scan(plan, on_event)
    scan.progress(force=True, percent=0.0)
    addresses = list(plan.targets)
    rtts: dict[str, float] = {}
    if options.discovery:
        stop = threading.Event()
        ticker = asyncio.get_running_loop().create_task(_discovery_ticker(scan, len(addresses), plan.timeout))
        try:
            sent = [0]
            alive = await _in_thread(
                lambda: discover(addresses, timeout=min(plan.timeout, 2.0), stop=stop, sent=sent), stop
            )
        finally:
            ticker.cancel()
        scan.discovery_sent = sent[0]
        for ip in addresses:  # in target order
            found = alive.get(ip)
            if found is None:
                continue
            scan.host_up(ip, rtt_ms=found.rtt * 1000 if found.rtt else None, ttl=found.ttl, mac=found.mac)
            if found.rtt:
                rtts[ip] = found.rtt
        up = [ip for ip in addresses if ip in alive]
        scan.hosts_done = len(addresses) - len(up)
    else:
        up = addresses
    scan.phase_base = _DISCOVERY_SHARE
    scan.progress(force=True)
    ports = ranked_order(plan.ports)
    shares = _shares(plan, up, ports)
    scan.sweep_total = len(up) * len(ports)
    for hosts, _part in shares:  # how many workers must report a host done before it is
        for ip in hosts:
            scan.parts_pending[ip] = scan.parts_pending.get(ip, 0) + 1
    jobs = [_job(plan, hosts, part, 1 / len(shares), rtts) for hosts, part in shares]
    try:
        if up:
            if len(jobs) == 1:
                await _sweep_in_thread(scan, jobs[0])
            else:
                await _sweep_in_processes(scan, jobs)
        scan.phase_base = _DISCOVERY_SHARE + _SWEEP_SHARE
        scan.sweep_total = 0
        scan.progress(force=True)
        await asyncio.gather(*scan.finishers)
    finally:
        for task in scan.finishers:
            task.cancel()
        if scan.finishers:  # let cancelled detections close their connections before returning
            await asyncio.gather(*scan.finishers, return_exceptions=True)
    # hosts that answered but whose sweep never reported done (none expected) still get their ports
    for ip, host in scan.hosts.items():
        if not host.ports and scan.open.get(ip):
            await scan.finish_host(ip)
    scan.progress(force=True, percent=100.0)
    order = {ip: i for i, ip in enumerate(addresses)}
    return ScanResult(
        hosts=sorted(scan.hosts.values(), key=lambda h: order.get(h.ip, 0)),  # target order
        started_at=started_at,
        finished_at=datetime.now(UTC),
        hosts_total=len(plan.targets),
        ports_per_host=len(plan.ports),
        probes_sent=scan.probes_sent,
        engine="builtin",
    )

"""The scan runner: a bounded set of scan subprocesses, their progress, and their results.

`start(app)` (routes.BACKGROUND) first fails scans that a previous server left queued or running,
then runs each scan this server accepted, at most RONDA_SCAN_WORKERS at once, each in its own
process (worker_process.py) whose JSON-lines events it relays: progress is saved at most once a
second and published on the bus as it comes; the result is merged into the inventory in one
transaction. A stopped scan's process group is killed as soon as the stop commits.

Each server process has a runner id (host:pid:random) stamped on the scans it accepted, with a
heartbeat; a scan whose runner is a dead process on this host, or whose heartbeat went quiet, is
failed by whichever server notices first, so no scan is ever left `running`.

Modes (RONDA_SCAN_EXECUTOR): `embedded` (above); `workers`, where a server only queues (mode
"server": it sweeps, nothing more) and `ronda worker` processes (mode "worker", worker.py) lease
queued scans (leases.py) and run them through this same code. Scans held under a lease (workers,
probes) are judged by the lease alone: once it lapses, the sweep re-queues them once, then fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.db import transaction
from ronda.core.events import Event, EventBus
from ronda.core.runtime import Runtime
from ronda.core.timeutil import as_utc, utcnow
from ronda.scanner import ScanResult
from ronda.scans import leases, repository
from ronda.scans.finish import complete
from ronda.scans.models import Scan
from ronda.scans.relay import Relay
from ronda.scans.schemas import ACTIVE

log = logging.getLogger("ronda.scans")

POLL_SECONDS = 1.0  # while scans run here: how often their database status is checked
IDLE_POLL = 30.0  # otherwise: how often to look for a queued scan whose wake-up was missed
SWEEP_EVERY = 20.0  # how often to look for scans other (dead) servers left behind
HEARTBEAT_EVERY = 10.0
STALE_AFTER = 60.0  # a runner silent this long is gone
KILL_WAIT = 5.0
READ_LIMIT = 256 * 1024 * 1024  # the largest JSON line (the result of a big scan)
BIG_LINE = 64 * 1024  # lines longer than this are decoded in a thread
RESTARTED = "server restarted"
LEASE_LOST = "its worker stopped renewing the lease (lease expired)"
WORKER_POLL = 2.0  # an idle worker's look for queued scans (a scan.queued event wakes it sooner)
Mode = str  # "embedded" | "server" | "worker"


def scan_options(scan: Scan, max_hosts: int) -> dict[str, Any]:
    """The ScanOptions (as a dict) a scan runs with: in a worker process here, or on a remote probe."""
    stored = scan.options or {}
    options: dict[str, Any] = {
        "targets": list(stored.get("ranges") or scan.networks), "ports": stored.get("ports"),
        "profile": scan.profile, "timeout_ms": stored.get("timeout_ms"),
        "max_concurrent": stored.get("max_concurrent"), "max_rate": stored.get("max_rate"),
        "enable_profiling": stored.get("enable_profiling"), "engine": stored.get("engine"),
        "max_hosts": max(max_hosts, scan.hosts_total),
    }
    return {k: v for k, v in options.items() if v is not None}


def _pid_alive(pid: int) -> bool:
    """Whether a process runs with this id (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)


class ScanRunner:
    def __init__(self, runtime: Runtime, bus: EventBus, mode: Mode = "embedded") -> None:
        self.runtime = runtime
        self.bus = bus
        self.mode = mode
        self.host = socket.gethostname()[:60]
        self.runner_id = f"{self.host}:{os.getpid()}:{secrets.token_hex(6)}"
        self.lease_seconds = runtime.settings.scan_lease_seconds
        # Leases are renewed well before they lapse, and looked at as often as they could lapse.
        self.heartbeat_every = min(HEARTBEAT_EVERY, self.lease_seconds / 3)
        self.sweep_every = min(SWEEP_EVERY, max(self.lease_seconds / 2, 0.25))
        self.slots = asyncio.Semaphore(runtime.settings.scan_workers)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.stopped: set[str] = set()  # scans stopped by a caller while this runner ran them
        self.wake = asyncio.Event()
        self.closing = False
        self._loop_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.sweep()
        except Exception:  # the database may be away at start-up: serve anyway (503s); the loop sweeps again
            log.exception("scan runner: start-up sweep failed; retrying with the periodic sweep")
        # Broadcast: a stop accepted by any server process reaches the one running the scan.
        self._unsubscribe = self.bus.subscribe(self._on_event, broadcast=True)
        self._loop_task = asyncio.create_task(self._loop(), name="scan-runner")

    async def stop(self) -> None:
        self.closing = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for scan_id in list(self.processes):
            self._kill(scan_id)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # What this server still had queued or running will not finish: say so now. (With the
        # database away, the next server's sweep says so instead, from the stale heartbeat.)
        try:
            await self._fail_mine("server stopped")
        except Exception:
            log.exception("scan runner: could not mark this server's scans as stopped")

    @property
    def new_scan_owner(self) -> str | None:
        """The runner_id a scan accepted here is stamped with (AWAITING_LEASE: a worker will lease it)."""
        return self.runner_id if self.mode == "embedded" else leases.AWAITING_LEASE

    async def _fail_mine(self, reason: str) -> None:
        async with self.unit(write=False) as session:
            mine = [scan.id for scan in await repository.active_scans(session, lock=False)
                    if scan.runner_id == self.runner_id]
        if not mine:
            return
        async with self.unit() as session:
            for scan_id in mine:
                scan = await repository.for_update(session, scan_id)
                if scan is not None and scan.status in ACTIVE:
                    if scan.lease_expires_at is not None:  # a worker gives its leases back
                        await leases.take_over(session, scan, "its worker stopped", given_back=True)
                    else:
                        await self._fail(session, scan, reason)

    def _on_event(self, event: Event) -> None:
        if event.type == "scan.queued":
            self.wake.set()
        elif event.type == "scan.cancelled":
            scan_id = str(event.data.get("scan_id"))
            if scan_id in self.tasks:
                self.stopped.add(scan_id)
                self._kill(scan_id)

    async def _loop(self) -> None:
        """Start what was queued here (woken by scan.queued), watch running scans every second, beat
        and sweep now and then. An idle server touches the database only every IDLE_POLL seconds."""
        clock = asyncio.get_running_loop().time
        last_beat = last_sweep = clock()
        while True:
            try:
                await self._dispatch()
                await self._reap_stopped()
                if self.tasks and clock() - last_beat >= self.heartbeat_every:
                    last_beat = clock()  # this server's queued and running scans are alive
                    now = utcnow()
                    lease_until = now + timedelta(seconds=self.lease_seconds) if self.mode == "worker" else None
                    async with self.unit() as session:
                        await repository.heartbeat(session, self.runner_id, now, lease_until)
                if clock() - last_sweep >= self.sweep_every:
                    last_sweep = clock()
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scan runner loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._pause())
            self.wake.clear()

    def _pause(self) -> float:
        if self.tasks:
            return min(POLL_SECONDS, self.heartbeat_every)
        idle = WORKER_POLL if self.mode == "worker" else IDLE_POLL
        return min(idle, self.sweep_every)

    async def _dispatch(self) -> None:
        if self.mode == "server":
            return  # `ronda worker` processes run the scans
        if self.mode == "worker":
            await self._lease()
            return
        async with self.unit(write=False) as session:
            queued = await repository.queued_for(session, self.runner_id)
        for scan_id in queued:
            if scan_id not in self.tasks and not self.closing:
                task = asyncio.create_task(self._run(scan_id), name=f"scan-{scan_id}")
                self.tasks[scan_id] = task
                task.add_done_callback(self._forgetter(scan_id))

    async def _lease(self) -> None:
        """Take queued scans while this worker has free slots (a read first: idle costs no write)."""
        while not self.closing and len(self.tasks) < self.runtime.settings.scan_workers:
            async with self.unit(write=False) as session:
                if not await leases.waiting(session, utcnow()):
                    return
            async with self.unit() as session:
                scan = await leases.lease_next(session, self.runner_id, self.lease_seconds)
            if scan is None:
                return  # another worker was quicker
            log.info("worker %s leased scan %s (attempt %d)", self.runner_id, scan.id, scan.attempts)
            task = asyncio.create_task(self._run(scan.id), name=f"scan-{scan.id}")
            self.tasks[scan.id] = task
            task.add_done_callback(self._forgetter(scan.id))

    async def _reap_stopped(self) -> None:
        """Kill the process of any scan of ours the database no longer says is running (a stop that
        another server process accepted, should its event not reach us)."""
        running = [scan_id for scan_id, process in self.processes.items() if process.returncode is None]
        if not running:
            return
        async with self.unit(write=False) as session:
            statuses = await repository.statuses(session, running, self.runner_id)
        for scan_id in running:
            if statuses.get(scan_id) != "running":
                self.stopped.add(scan_id)
                self._kill(scan_id)

    def _forgetter(self, scan_id: str) -> Callable[[asyncio.Task[None]], None]:
        return lambda _task: self._forget(scan_id)

    def _forget(self, scan_id: str) -> None:
        self.tasks.pop(scan_id, None)
        self.processes.pop(scan_id, None)
        self.stopped.discard(scan_id)

    @asynccontextmanager
    async def unit(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A transaction whose queued events go out on the bus once it commits."""
        async with transaction(self.runtime.sessions, write=write) as session:
            yield session
        await events.flush_to(self.bus, session)

    # --- orphaned scans ---------------------------------------------------------------------------

    def _orphaned(self, scan: Scan, now: datetime) -> str | None:
        """Why a queued or running scan will never finish, or None while its runner lives."""
        if scan.runner_id == self.runner_id:
            return None
        if scan.lease_expires_at is not None:  # held by a worker or a probe: the lease alone decides
            lease = as_utc(scan.lease_expires_at)
            return LEASE_LOST if lease is not None and lease < now else None
        if scan.runner_id == leases.AWAITING_LEASE:  # for a worker or a probe to lease
            return None if scan.status == "queued" else RESTARTED
        if not scan.runner_id:
            return RESTARTED
        host, _, rest = scan.runner_id.partition(":")
        pid_text = rest.partition(":")[0]
        if host == self.host and pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            return RESTARTED
        beat = as_utc(scan.heartbeat_at)
        if beat is None or beat < now - timedelta(seconds=STALE_AFTER):
            return f"{RESTARTED} (its runner stopped responding)"
        return None

    async def sweep(self) -> None:
        """Fail the scans no live runner will finish. Reads first: an idle server never writes."""
        async with self.unit(write=False) as session:
            now = utcnow()
            suspects = [scan.id for scan in await repository.active_scans(session, lock=False)
                        if self._orphaned(scan, now) is not None]
        if not suspects:
            return
        async with self.unit() as session:
            now = utcnow()
            for scan_id in suspects:
                scan = await repository.for_update(session, scan_id)
                reason = self._orphaned(scan, now) if scan is not None and scan.status in ACTIVE else None
                if scan is not None and reason is not None and scan.lease_expires_at is not None:
                    log.warning("scan %s lost its runner %s: %s", scan.id, scan.runner_id, reason)
                    await leases.take_over(session, scan, reason)
                elif scan is not None and reason is not None:
                    log.warning("scan %s was left %s; marking it failed: %s", scan.id, scan.status, reason)
                    await self._fail(session, scan, reason)

    # --- one scan ---------------------------------------------------------------------------------

    async def _run(self, scan_id: str) -> None:
        async with self.slots:
            if self.closing:
                return
            scan = await self._begin(scan_id)
            if scan is None:
                return  # stopped while queued (or, leased, stopped or taken over meanwhile)
            try:
                await self._execute(scan)
            except asyncio.CancelledError:
                self._kill(scan_id)
                raise
            except Exception as exc:
                log.exception("scan %s failed in the runner", scan_id)
                self._kill(scan_id)
                await self._finish_failed(scan_id, f"internal error: {type(exc).__name__}")

    async def _begin(self, scan_id: str) -> Scan | None:
        async with self.unit() as session:
            if self.mode == "worker":  # leased: already running under this worker (scan.started queued then)
                scan = await repository.for_update(session, scan_id)
                if scan is None or scan.status != "running" or scan.runner_id != self.runner_id:
                    return None
                return scan
            if not await repository.claim(session, scan_id, self.runner_id, utcnow()):
                return None
            scan = await repository.for_update(session, scan_id)
            assert scan is not None
            events.queue(session, "scan.started", scan.tenant_id,
                         {"scan_id": scan.id, "target": scan.target, "profile": scan.profile})
        return scan

    def _options(self, scan: Scan) -> dict[str, Any]:
        return scan_options(scan, self.runtime.settings.scan_max_hosts)

    async def _execute(self, scan: Scan) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ronda.scans.worker_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=READ_LIMIT,
        )
        self.processes[scan.id] = process
        if scan.id in self.stopped:  # stopped between the claim and now
            self._kill(scan.id)
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        process.stdin.write(json.dumps(self._options(scan)).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
        stderr_task = asyncio.create_task(process.stderr.read())
        relay = Relay(self, scan)
        try:
            while True:
                line = await process.stdout.readline()
                if not line:
                    break
                try:
                    # A big scan's result is one long line: decoded off the event loop.
                    message = json.loads(line) if len(line) < BIG_LINE else await asyncio.to_thread(json.loads, line)
                except ValueError:
                    continue
                if not await relay.handle(message):
                    self.stopped.add(scan.id)  # stopped by another server process
                    self._kill(scan.id)
            code = await process.wait()
        except BaseException:
            stderr_task.cancel()
            raise
        finally:
            if process.returncode is None:
                self._kill(scan.id)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(process.wait(), KILL_WAIT)
        stderr = (await stderr_task).decode(errors="replace").strip()
        if scan.id in self.stopped:
            return  # the stop route already recorded it
        if relay.result is not None and code == 0:
            await self._finish_completed(scan.id, relay.result)
        else:
            reason = relay.error or (stderr.splitlines()[-1][:300] if stderr else "") or \
                f"the scanner exited with status {code}"
            await self._finish_failed(scan.id, reason)

    def _kill(self, scan_id: str) -> None:
        process = self.processes.get(scan_id)
        if process is None or process.returncode is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    # --- endings ----------------------------------------------------------------------------------

    async def _fail(self, session: AsyncSession, scan: Scan, reason: str) -> None:
        now = utcnow()
        scan.status, scan.error, scan.completed_at = "failed", reason, now
        scan.estimated_completion, scan.updated_at = None, now
        await session.flush()
        await audit.record(session, Actor(tenant_id=scan.tenant_id), "scan.failed", resource_type="scan",
                           resource_id=scan.id, metadata={"reason": reason})
        events.queue(session, "scan.failed", scan.tenant_id, {"scan_id": scan.id, "reason": reason})

    async def _finish_failed(self, scan_id: str, reason: str) -> None:
        async with self.unit() as session:
            scan = await repository.for_update(session, scan_id)
            if scan is not None and scan.status in ACTIVE and scan.runner_id == self.runner_id:
                await self._fail(session, scan, reason)

    async def _finish_completed(self, scan_id: str, result: ScanResult) -> None:
        async with self.unit() as session:
            scan = await repository.for_update(session, scan_id)
            if scan is None or scan.status != "running" or scan.runner_id != self.runner_id:
                return  # stopped, or (its lease lost) taken over by another runner
            scan.lease_expires_at = None
            await complete(session, scan, result)


Stop = Callable[[], Awaitable[None]]


async def start(app: FastAPI) -> Stop:
    runtime: Runtime = app.state.runtime
    mode = "embedded" if runtime.settings.scan_executor == "embedded" else "server"
    runner = ScanRunner(runtime, app.state.events, mode)
    await runner.start()
    app.state.scan_runner = runner
    return runner.stop

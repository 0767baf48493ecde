"""The scan runner: a bounded set of scan subprocesses, their progress, and their results.

`start(app)` (routes.BACKGROUND) first fails scans that a previous server left queued or running,
then runs each scan this server accepted, at most RONDA_SCAN_WORKERS at once, each in its own
process (worker_process.py) whose JSON-lines events it relays: progress is saved at most once a
second and published on the bus as it comes; the result is merged into the inventory in one
transaction. A stopped scan's process group is killed as soon as the stop commits.

Each server process has a runner id (host:pid:random) stamped on the scans it accepted, with a
heartbeat; a scan whose runner is a dead process on this host, or whose heartbeat went quiet, is
failed by whichever server notices first, so no scan is ever left `running`.
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
from ronda.core.timeutil import as_utc, iso, utcnow
from ronda.scanner import ScanResult
from ronda.scans import repository
from ronda.scans.finish import complete
from ronda.scans.models import Scan
from ronda.scans.schemas import ACTIVE

log = logging.getLogger("ronda.scans")

POLL_SECONDS = 1.0  # while scans run here: how often their database status is checked
IDLE_POLL = 30.0  # otherwise: how often to look for a queued scan whose wake-up was missed
SWEEP_EVERY = 20.0  # how often to look for scans other (dead) servers left behind
SAVE_EVERY = 1.0  # progress is written at most this often
PUBLISH_EVERY = 0.25  # scan.progress events at most this often
HEARTBEAT_EVERY = 10.0
STALE_AFTER = 60.0  # a runner silent this long is gone
KILL_WAIT = 5.0
READ_LIMIT = 256 * 1024 * 1024  # the largest JSON line (the result of a big scan)
BIG_LINE = 64 * 1024  # lines longer than this are decoded in a thread
RESTARTED = "server restarted"


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
    def __init__(self, runtime: Runtime, bus: EventBus) -> None:
        self.runtime = runtime
        self.bus = bus
        self.host = socket.gethostname()[:60]
        self.runner_id = f"{self.host}:{os.getpid()}:{secrets.token_hex(6)}"
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
                if self.tasks and clock() - last_beat >= HEARTBEAT_EVERY:
                    last_beat = clock()  # this server's queued and running scans are alive
                    async with self.unit() as session:
                        await repository.heartbeat(session, self.runner_id, utcnow())
                if clock() - last_sweep >= SWEEP_EVERY:
                    last_sweep = clock()
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scan runner loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS if self.tasks else IDLE_POLL)
            self.wake.clear()

    async def _dispatch(self) -> None:
        async with self.unit(write=False) as session:
            queued = await repository.queued_for(session, self.runner_id)
        for scan_id in queued:
            if scan_id not in self.tasks and not self.closing:
                task = asyncio.create_task(self._run(scan_id), name=f"scan-{scan_id}")
                self.tasks[scan_id] = task
                task.add_done_callback(self._forgetter(scan_id))

    async def _reap_stopped(self) -> None:
        """Kill the process of any scan of ours the database no longer says is running (a stop that
        another server process accepted, should its event not reach us)."""
        running = [scan_id for scan_id, process in self.processes.items() if process.returncode is None]
        if not running:
            return
        async with self.unit(write=False) as session:
            statuses = await repository.statuses(session, running)
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
                if scan is not None and reason is not None:
                    log.warning("scan %s was left %s; marking it failed: %s", scan.id, scan.status, reason)
                    await self._fail(session, scan, reason)

    # --- one scan ---------------------------------------------------------------------------------

    async def _run(self, scan_id: str) -> None:
        async with self.slots:
            if self.closing:
                return
            async with self.unit() as session:
                if not await repository.claim(session, scan_id, self.runner_id, utcnow()):
                    return  # stopped while queued
                scan = await repository.for_update(session, scan_id)
                assert scan is not None
                events.queue(session, "scan.started", scan.tenant_id,
                             {"scan_id": scan.id, "target": scan.target, "profile": scan.profile})
            try:
                await self._execute(scan)
            except asyncio.CancelledError:
                self._kill(scan_id)
                raise
            except Exception as exc:
                log.exception("scan %s failed in the runner", scan_id)
                self._kill(scan_id)
                await self._finish_failed(scan_id, f"internal error: {type(exc).__name__}")

    def _options(self, scan: Scan) -> dict[str, Any]:
        stored = scan.options or {}
        options: dict[str, Any] = {
            "targets": list(stored.get("ranges") or scan.networks), "ports": stored.get("ports"),
            "profile": scan.profile, "timeout_ms": stored.get("timeout_ms"),
            "max_concurrent": stored.get("max_concurrent"), "max_rate": stored.get("max_rate"),
            "enable_profiling": stored.get("enable_profiling"), "engine": stored.get("engine"),
            "max_hosts": max(self.runtime.settings.scan_max_hosts, scan.hosts_total),
        }
        return {k: v for k, v in options.items() if v is not None}

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
            if scan is not None and scan.status in ACTIVE:
                await self._fail(session, scan, reason)

    async def _finish_completed(self, scan_id: str, result: ScanResult) -> None:
        async with self.unit() as session:
            scan = await repository.for_update(session, scan_id)
            if scan is None or scan.status != "running":
                return
            await complete(session, scan, result)


class Relay:
    """Turns a worker's JSON lines into bus events and (throttled) progress writes."""

    def __init__(self, runner: ScanRunner, scan: Scan) -> None:
        self.runner = runner
        self.scan = scan
        self.result: ScanResult | None = None
        self.error: str | None = None
        self.hosts_found = 0
        self.ports_found = 0
        self.progress: dict[str, Any] = {}
        self.saved_at = 0.0
        self.published_at = 0.0

    async def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        await self.runner.bus.publish(event_type, self.scan.tenant_id, {"scan_id": self.scan.id, **data})

    async def handle(self, message: dict[str, Any]) -> bool:
        """False once the scan is no longer running in the database (stopped elsewhere)."""
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "host_found":
            self.hosts_found += 1
            await self._publish("scan.host_found", {name: data.get(name) for name in
                                                    ("ip", "hostname", "mac", "vendor", "os_guess", "device_type")})
        elif kind == "port_found":
            self.ports_found += 1
            await self._publish("scan.port_found", {name: data.get(name) for name in
                                                    ("ip", "port", "protocol", "service", "product", "version")})
        elif kind == "progress":
            self.progress = data
        elif kind == "result":
            self.result = ScanResult.from_dict(data)
            return True
        elif kind == "error":
            self.error = str(data.get("message") or "the scanner refused its options")[:500]
            return True
        return await self._tick()

    def _values(self) -> dict[str, Any]:
        percent = float(self.progress.get("progress_percent") or 0.0)
        eta = self.progress.get("eta_seconds")
        estimated = utcnow() + timedelta(seconds=float(eta)) if isinstance(eta, int | float) and eta >= 0 else None
        return {
            "progress_percent": max(0.0, min(percent, 99.9)),
            "hosts_found": max(self.hosts_found, int(self.progress.get("hosts_found") or 0)),
            "ports_found": max(self.ports_found, int(self.progress.get("ports_found") or 0)),
            "probes_sent": int(self.progress.get("probes_sent") or 0),
            "estimated_completion": estimated,
        }

    async def _tick(self) -> bool:
        clock = asyncio.get_running_loop().time()
        values = self._values()
        if clock - self.published_at >= PUBLISH_EVERY:
            self.published_at = clock
            await self._publish("scan.progress", {
                "progress_percent": round(values["progress_percent"], 1), "hosts_found": values["hosts_found"],
                "ports_found": values["ports_found"], "estimated_completion": iso(values["estimated_completion"]),
            })
        if clock - self.saved_at < SAVE_EVERY:
            return True
        self.saved_at = clock
        now = utcnow()
        async with self.runner.unit() as session:
            return await repository.save_progress(session, self.scan.id,
                                                  {**values, "heartbeat_at": now, "updated_at": now})


Stop = Callable[[], Awaitable[None]]


async def start(app: FastAPI) -> Stop:
    runner = ScanRunner(app.state.runtime, app.state.events)
    await runner.start()
    app.state.scan_runner = runner
    return runner.stop

"""The report runner: a background task in every server process that claims queued reports.

Reports wait in the `reports` table as `pending`. A runner claims the oldest (pending -> running,
atomically, so two processes never take the same one), keeps a lease on it while it works, and
records the outcome. A report left `running` by a process that died loses its lease; any runner
puts it back in the queue (or marks it failed after MAX_ATTEMPTS tries). A runner that is stopped
mid-report hands it back at once. One report at a time per process, to bound memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.db import transaction
from ronda.core.events import Event, EventBus
from ronda.core.timeutil import utcnow
from ronda.reports import repository
from ronda.reports.generate import generate
from ronda.reports.service import REQUESTED_EVENT

log = logging.getLogger("ronda.reports")

LEASE = timedelta(seconds=60)
RENEW_EVERY = 15.0  # seconds
POLL_EVERY = 5.0  # seconds between looks at the queue when nothing woke the runner
RECOVER_EVERY = 30.0  # seconds between looks for expired leases (a wake-up looks at once)
MAX_ATTEMPTS = 2


class ReportRunner:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: EventBus | None, data_dir: Path) -> None:
        self.sessions = sessions
        self.bus = bus
        self.data_dir = data_dir
        self.wakeup = asyncio.Event()
        self.current: str | None = None
        self.recover_due = True

    def wake(self, _event: Event | None = None) -> None:
        self.recover_due = True
        self.wakeup.set()

    async def recover(self) -> int:
        """Re-queue (or fail, after MAX_ATTEMPTS) running reports whose lease expired."""
        now = utcnow()
        # Look first with a read-only transaction: on SQLite a write transaction takes the database's
        # write lock, and this runs every few seconds in every process.
        async with transaction(self.sessions, write=False) as session:
            if not await repository.expired(session, now):
                return 0
        async with transaction(self.sessions) as session:
            stale = await repository.expired(session, now)
            for report in stale:
                report.lease_expires_at = None
                actor = Actor(actor_type="system", tenant_id=report.tenant_id)
                if report.attempts >= MAX_ATTEMPTS:
                    report.status, report.completed_at = "failed", now
                    report.error = "generation was interrupted (the server stopped) too many times"
                    await audit.record(session, actor, "report.failed", resource_type="report",
                                       resource_id=report.id,
                                       metadata={"error": report.error, "attempts": report.attempts})
                else:
                    report.status = "pending"
                    await audit.record(session, actor, "report.requeued", resource_type="report",
                                       resource_id=report.id, metadata={"attempts": report.attempts})
        if stale:
            log.warning("reports: %d interrupted report(s) recovered", len(stale))
        return len(stale)

    async def claim_next(self) -> str | None:
        async with transaction(self.sessions, write=False) as session:
            if await repository.oldest_pending(session) is None:
                return None
        async with transaction(self.sessions) as session:
            report_id = await repository.oldest_pending(session)
            if report_id is None:
                return None
            now = utcnow()
            return report_id if await repository.claim(session, report_id, now, now + LEASE) else None

    async def run_one(self) -> bool:
        """Claim and generate one report; false when the queue is empty."""
        report_id = await self.claim_next()
        if report_id is None:
            return False
        self.current = report_id
        renewer = asyncio.create_task(self._renew(report_id))
        try:
            await generate(self.sessions, self.bus, self.data_dir, report_id)
        except asyncio.CancelledError:
            await self.hand_back()  # stopping mid-report: back to the queue now, not when the lease runs out
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self.current = None
        return True

    async def _renew(self, report_id: str) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                async with transaction(self.sessions) as session:
                    await repository.renew(session, report_id, utcnow() + LEASE)
            except Exception:
                log.warning("reports: could not renew the lease of %s", report_id, exc_info=True)

    async def loop(self) -> None:
        failing = False
        last_recovery = 0.0
        clock = asyncio.get_running_loop().time
        while True:
            try:
                if self.recover_due or clock() - last_recovery >= RECOVER_EVERY:
                    self.recover_due, last_recovery = False, clock()
                    await self.recover()
                while await self.run_one():
                    pass
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception:
                # Once per outage (the database down), not every few seconds while it lasts.
                if not failing:
                    log.exception("reports: runner round failed; retrying every %s s", POLL_EVERY)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), POLL_EVERY)
            self.wakeup.clear()

    async def hand_back(self) -> None:
        """Put the report being generated back in the queue (this process is stopping)."""
        if self.current is None:
            return
        try:
            async with transaction(self.sessions) as session:
                await repository.release(session, self.current)
        except Exception:
            log.warning("reports: could not hand back %s; its lease will expire", self.current, exc_info=True)


async def start(app: FastAPI) -> Callable[[], Awaitable[None]]:
    runtime = app.state.runtime
    bus: EventBus | None = getattr(app.state, "events", None)
    runner = ReportRunner(runtime.sessions, bus, runtime.settings.data_dir)
    app.state.report_runner = runner
    unsubscribe = bus.subscribe(lambda event: runner.wake() if event.type == REQUESTED_EVENT else None) \
        if bus is not None else (lambda: None)
    task = asyncio.create_task(runner.loop(), name="ronda-reports")

    async def stop() -> None:
        unsubscribe()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.hand_back()

    return stop

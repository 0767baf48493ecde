"""Background CVE work in the server: keeping matches current, and feed updates.

Every `cve_match_interval` seconds (sooner when a device event arrives) the runner
1. re-matches every device once the CVE data changed (an import bumps `data_version`, whoever ran it:
   `ronda cve import`, POST /cve/update or the schedule);
2. re-matches the devices changed since its watermark: new software data from an agent, ports seen by
   a scan, and the devices named by `device.discovered|updated|port_opened` events;
3. imports new files from RONDA_CVE_FEED_DIR every `cve_feed_interval` seconds (0: never).
Steps 1 and 2 claim their work with compare-and-set on cve_state, so with several server processes
each change is matched once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.config import Settings
from ronda.core.db import transaction
from ronda.core.events import Event, EventBus
from ronda.core.timeutil import as_utc, iso, utcnow
from ronda.cve import repository, service
from ronda.cve.importer import FeedError
from ronda.devices.models import DeviceData, DevicePort

log = logging.getLogger("ronda.cve")

DEVICE_EVENTS = frozenset({"device.discovered", "device.updated", "device.port_opened"})
# Changes are looked for this far behind the watermark: a transaction may commit a little after the
# time it wrote; matching a device twice is harmless.
OVERLAP = timedelta(seconds=5)


class CveRunner:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], bus: EventBus | None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.bus = bus
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.update_task: asyncio.Task[Any] | None = None
        self.next_feed_check: datetime | None = None
        self.last_update: dict[str, Any] | None = None

    # --- device events -------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if event.type in DEVICE_EVENTS:
            device_id = event.data.get("device_id")
            if isinstance(device_id, str):
                self.dirty.add(device_id)
                self.wake.set()

    # --- feed updates --------------------------------------------------------------------------

    @property
    def updating(self) -> bool:
        return self.update_task is not None and not self.update_task.done()

    def start_update(self, files: list[Path], source: str) -> None:
        """Import these files in the background (POST /cve/update); the next tick re-matches."""
        self.update_task = asyncio.create_task(self._import(files, source), name="ronda-cve-update")

    async def _import(self, files: list[Path], source: str) -> None:
        report: dict[str, Any] = {"started_at": iso(utcnow()), "files": [], "errors": []}
        self.last_update = report
        for path in files:
            try:
                result = await service.import_file(self.sessions, path, source=source)
                report["files"].append({"file": result.file, "records": result.records, "created": result.created,
                                        "updated": result.updated, "skipped": result.skipped})
            except FeedError as exc:
                log.warning("CVE feed file refused: %s", exc)
                report["errors"].append(str(exc))
            except Exception:
                log.exception("CVE feed import of %s failed", path)
                report["errors"].append(f"{path.name}: import failed")
        report["finished_at"] = iso(utcnow())
        self.wake.set()

    async def scheduled_feed_check(self, now: datetime) -> None:
        directory = self.settings.cve_feed_dir
        interval = self.settings.cve_feed_interval
        if directory is None or interval <= 0 or self.updating:
            return
        if self.next_feed_check is None or now >= self.next_feed_check:
            self.next_feed_check = now + timedelta(seconds=interval)
            async with self.sessions() as session:
                fresh, _ = await service.new_feed_files(session, directory)
            if fresh:
                self.start_update(fresh, "schedule")

    # --- matching ------------------------------------------------------------------------------

    async def tick(self) -> None:
        now = utcnow()
        await self.scheduled_feed_check(now)
        if self.updating:
            return  # match once the import has landed
        await self.match_new_data()
        await self.match_changed_devices(now)

    async def match_new_data(self) -> None:
        async with transaction(self.sessions) as session:
            data = await repository.get_state(session, repository.DATA_VERSION)
            matched = await repository.get_state(session, repository.MATCHED_VERSION)
            if data is None or data == matched:
                return
            if not await repository.claim_state(session, repository.MATCHED_VERSION, matched, data):
                return
        try:
            summary = await service.rematch(self.sessions, self.bus)
        except Exception:
            # Hand the run back so the next tick (here or in another process) tries again.
            async with transaction(self.sessions) as session:
                await repository.claim_state(session, repository.MATCHED_VERSION, data, matched or "0")
            raise
        log.info("CVE data version %s: re-matched %d devices (%d new matches, %d gone)", data, summary.devices,
                 summary.inserted, summary.deleted)

    async def match_changed_devices(self, now: datetime) -> None:
        async with transaction(self.sessions) as session:
            mark = await repository.get_state(session, repository.WATERMARK)
            if not await repository.claim_state(session, repository.WATERMARK, mark, iso(now) or ""):
                return
            since = as_utc(datetime.fromisoformat(mark.replace("Z", "+00:00"))) if mark else None
            changed = set(self.dirty)
            self.dirty.clear()
            if since is not None:
                changed |= await changed_devices(session, since - OVERLAP)
        if changed:
            await service.rematch(self.sessions, self.bus, sorted(changed))


async def changed_devices(session: AsyncSession, since: datetime) -> set[str]:
    """Devices with new software data or ports seen since `since`."""
    software = await session.scalars(
        select(DeviceData.device_id).where(DeviceData.data_type == "software", DeviceData.collected_at > since)
        .distinct()
    )
    ports = await session.scalars(
        select(DevicePort.device_id)
        .where(or_(DevicePort.last_seen > since, DevicePort.first_seen > since)).distinct()
    )
    return set(software.all()) | set(ports.all())


async def _loop(runner: CveRunner, interval: float) -> None:
    while True:
        try:
            await runner.tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("CVE matching failed; retrying at the next interval")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.wake.wait(), timeout=interval)
        runner.wake.clear()


async def start(app: FastAPI) -> Callable[[], Awaitable[None]]:
    settings: Settings = app.state.runtime.settings
    bus: EventBus | None = getattr(app.state, "events", None)
    runner = CveRunner(settings, app.state.sessions, bus)
    app.state.cve_runner = runner
    unsubscribe = bus.subscribe(runner.on_event) if bus is not None else None
    task = asyncio.create_task(_loop(runner, settings.cve_match_interval), name="ronda-cve-runner")

    async def stop() -> None:
        if unsubscribe is not None:
            unsubscribe()
        for job in (task, runner.update_task):
            if job is not None and not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job

    return stop


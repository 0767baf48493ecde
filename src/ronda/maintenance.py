"""Periodic housekeeping in every server process: device-history retention and SQLite statistics.

Every `RONDA_MAINTENANCE_INTERVAL` seconds: superseded device data older than
`RONDA_DEVICE_HISTORY_DAYS` is deleted (the newest version of each kind always stays), and on SQLite
`PRAGMA optimize` refreshes the planner's statistics, which SQLite otherwise never gathers (without
them it picks poor indexes as tables grow). Both are idempotent, so several processes doing it is
harmless; a failed round is logged and retried at the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import text

from ronda.core.db import transaction
from ronda.core.runtime import Runtime
from ronda.core.timeutil import utcnow
from ronda.devices import repository as devices

log = logging.getLogger("ronda.maintenance")


async def run_once(runtime: Runtime) -> int:
    """One round; returns how many device-data versions were pruned."""
    cutoff = utcnow() - timedelta(days=runtime.settings.device_history_days)
    async with transaction(runtime.sessions) as session:
        pruned = await devices.prune_history(session, cutoff)
    if runtime.settings.is_sqlite:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("PRAGMA optimize"))
    if pruned:
        log.info("maintenance: pruned %d superseded device data versions older than %s", pruned, cutoff.date())
    return pruned


async def start(app: FastAPI) -> Callable[[], Awaitable[None]]:
    runtime: Runtime = app.state.runtime
    interval = runtime.settings.maintenance_interval

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await run_once(runtime)
            except Exception:
                log.exception("maintenance round failed; retrying in %s s", interval)

    task = asyncio.create_task(loop(), name="ronda-maintenance")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop

"""The alert engine: a local bus subscriber (once per event cluster-wide) and a worker that runs the
rules, each event in its own transaction, after the triggering change has committed.

The subscriber only queues (publishing never waits on the rules); the worker drains the queue in
order. Listed in routes.BACKGROUND."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from ronda.alerts import service
from ronda.alerts.rules import RULES
from ronda.core import events
from ronda.core.db import transaction
from ronda.core.events import Event, EventBus
from ronda.routes import Stop

log = logging.getLogger("ronda.alerts")
QUEUE_LIMIT = 10_000
RETRIES = 3


class AlertEngine:
    def __init__(self, app: FastAPI) -> None:
        self.sessions = app.state.sessions
        self.bus: EventBus = app.state.events
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        self._unsubscribe = self.bus.subscribe(self.on_event)
        self._task = asyncio.create_task(self._work(), name="ronda-alert-engine")

    def on_event(self, event: Event) -> None:
        if event.type not in RULES:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.error("alert engine is %d events behind; dropping %s %s", QUEUE_LIMIT, event.type, event.id)

    async def _work(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self.handle(event)
            finally:
                self.queue.task_done()

    async def handle(self, event: Event) -> None:
        resolves = (event.type == "device.compliance_changed" and event.data.get("old_status") == "non_compliant"
                    and event.data.get("new_status") == "compliant")
        for attempt in range(RETRIES):
            try:
                # Decide in a read transaction: most events raise nothing, and need no write lock.
                async with transaction(self.sessions, write=False) as reader:
                    triggers = await RULES[event.type](reader, event)
                if not triggers and not resolves:
                    return
                async with events.transaction(self.sessions, self.bus) as session:
                    for trigger in triggers:
                        await service.raise_alert(session, trigger)
                    if resolves:
                        await service.auto_resolve(session, event.tenant_id, "non_compliant",
                                                   str(event.data.get("device_id")), "The device is compliant again")
                return
            except Exception:
                if attempt == RETRIES - 1:
                    log.exception("alert rules failed on %s %s", event.type, event.id)
                else:
                    await asyncio.sleep(0.1 * (attempt + 1))

    async def stop(self) -> None:
        self._unsubscribe()
        with contextlib.suppress(TimeoutError):  # finish what is queued, briefly
            await asyncio.wait_for(self.queue.join(), timeout=5)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def start(app: FastAPI) -> Stop:
    engine = AlertEngine(app)
    app.state.alert_engine = engine
    return engine.stop

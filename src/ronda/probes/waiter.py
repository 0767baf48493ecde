"""Wakes long-polling probe leases when a scan is queued anywhere in the cluster (routes.BACKGROUND)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from ronda.core.events import Event


class QueueWaiter:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def on_event(self, event: Event) -> None:
        if event.type == "scan.queued":
            self._event.set()
            self._event = asyncio.Event()  # the next waiters wait for the next scan

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)


async def start(app: FastAPI) -> Callable[[], Awaitable[None]]:
    waiter = QueueWaiter()
    app.state.probe_waiter = waiter
    # Broadcast: a scan queued through another server process wakes this one's probes too.
    unsubscribe = app.state.events.subscribe(waiter.on_event, broadcast=True)

    async def stop() -> None:
        unsubscribe()

    return stop

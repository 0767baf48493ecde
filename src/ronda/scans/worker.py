"""`ronda worker`: a scan executor for scaled mode (RONDA_SCAN_EXECUTOR=workers).

It leases queued scans from the database (leases.py) and runs each exactly as an embedded server
does (runner.ScanRunner in mode "worker": a subprocess per scan, throttled progress, the merge and
its events). Events go out on the event bus: through Redis (RONDA_REDIS_URL) they reach every API
server's WebSocket clients. The bus's local subscribers that must see a scan's consequences once,
in the process that publishes them (alert rules, webhook deliveries, CVE matching), run here too.
SIGTERM or SIGINT: running scans are killed and given back to the queue (re-queued once, see leases.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from ronda.config import Settings
from ronda.core.events import EventBus
from ronda.scans.runner import ScanRunner

log = logging.getLogger("ronda.worker")

# Background modules whose local bus subscribers must run where the scan events are published.
SUBSCRIBERS = ("alerts.engine", "webhooks.dispatcher", "cve.runner")


async def run_worker(settings: Settings, ready: Callable[[str], None] | None = None) -> None:
    from ronda.app import build_runtime
    from ronda.core.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    runtime = build_runtime(settings)
    state_holder = FastAPI()  # not served: only its `state`, which the background modules read
    state_holder.state.runtime = runtime
    state_holder.state.sessions = runtime.sessions
    bus = EventBus(settings.redis_url)
    state_holder.state.events = bus
    await bus.start()
    stops: list[Callable[[], Awaitable[None]]] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        for name in SUBSCRIBERS:
            stops.append(await importlib.import_module(f"ronda.{name}").start(state_holder))
        runner = ScanRunner(runtime, bus, "worker")
        await runner.start()
        stops.append(runner.stop)
        log.info("scan worker %s ready (%d slots)", runner.runner_id, settings.scan_workers)
        if ready is not None:
            ready(runner.runner_id)
        await stopping.wait()
    finally:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                await stop()
        await bus.close()
        await runtime.limiter.close()
        await runtime.engine.dispose()

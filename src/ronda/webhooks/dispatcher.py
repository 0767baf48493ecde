"""Turns bus events into persisted deliveries and sends what is due, with retries that survive restarts.

Every state lives in `webhook_deliveries`: a delivery is pending with a `next_attempt_at` until it
succeeds or fails its fifth attempt, so a server that stops mid-schedule loses nothing; any server
sharing the database picks the row up when it falls due. A round claims due rows with an UPDATE that
re-checks the claim in its WHERE clause (one row count of 1 per row, whoever races), sends them
concurrently and records each outcome under the claim's token. A claim expires after the attempt's
timeout plus a margin, so a process that dies mid-send only delays that attempt.

Intake: the bus hands each event to `on_event`, which only queues it (bounded); a task writes the
deliveries in batches and wakes the sender. The bus publishes after the commit, so an event whose
process dies between publishing and that write gets no delivery: the one window not persisted.

`now` comes from app.state.webhook_clock (clock.py): the tests swap in a manual clock and walk
through the 30 s / 2 min / 10 min / 1 h schedule without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.config import Settings
from ronda.core.db import transaction
from ronda.core.events import Event
from ronda.core.timeutil import iso
from ronda.webhooks import repository, sender, service, signing
from ronda.webhooks.clock import STATE_KEY as CLOCK_KEY
from ronda.webhooks.clock import SkewedClock, clock_of
from ronda.webhooks.schemas import KNOWN_EVENTS, TEST_EVENT

log = logging.getLogger("ronda.webhooks")

BATCH = 20  # deliveries claimed (and sent concurrently) per round
CLAIM_MARGIN = 30.0  # seconds a claim outlives the attempt's timeout
STATE_KEY = "webhook_dispatcher"
INTAKE_LIMIT = 10_000  # events waiting to become deliveries
INTAKE_BATCH = 200  # events turned into deliveries per transaction
INTAKE_PATIENCE = 600.0  # seconds a batch waits for the database before it is given up
RETENTION = timedelta(days=30)  # finished deliveries are kept this long in the delivery log
PRUNE_EVERY = 3600.0  # seconds between prunings


class Dispatcher:
    def __init__(self, state: Any, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.state = state
        self.sessions = sessions
        self.settings = settings
        self.box = signing.SecretBox(settings.ensure_secret_key())
        self.client = sender.build_client(settings.webhook_timeout)
        self._wake = asyncio.Event()
        self._intake: asyncio.Queue[Event] = asyncio.Queue(maxsize=INTAKE_LIMIT)
        self._next_prune = asyncio.get_running_loop().time() + 60  # not in the middle of start-up

    def now(self) -> datetime:
        return clock_of(self.state).now()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    # --- intake ------------------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """A local bus subscriber (once per event cluster-wide). It only queues the event: the rows are
        written by the intake task, so a publisher never waits on a database write of ours."""
        if event.type in KNOWN_EVENTS:
            await self._intake.put(event)  # bounded: a flood slows its publishers instead of growing

    async def run_intake(self) -> None:
        while True:
            batch = [await self._intake.get()]
            while not self._intake.empty() and len(batch) < INTAKE_BATCH:
                batch.append(self._intake.get_nowait())
            try:
                await self._record_with_retries(batch)
            finally:
                for _ in batch:
                    self._intake.task_done()

    async def _record_with_retries(self, batch: list[Event]) -> None:
        """Write the batch's deliveries; while the database is away, keep the batch and try again
        (0.5 s, doubling to 30 s) for up to INTAKE_PATIENCE seconds rather than dropping it."""
        delay, waited = 0.5, 0.0
        while True:
            try:
                await self._create_deliveries(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if waited >= INTAKE_PATIENCE:
                    log.exception("gave up recording webhook deliveries for %d events after %.0f s",
                                  len(batch), waited)
                    return
                log.warning("could not record webhook deliveries for %d events; retrying in %.1f s",
                            len(batch), delay, exc_info=True)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 30.0)

    async def _create_deliveries(self, batch: list[Event]) -> None:
        """One delivery per (event, active hook that wants it), all in one transaction."""
        async with transaction(self.sessions, write=False) as session:
            hooks = {tenant: await repository.active_hooks(session, tenant)
                     for tenant in dict.fromkeys(e.tenant_id for e in batch)}
        now = self.now()
        rows = [service.new_delivery(hook, event.id, event.type, event.occurred_at, event.data, now)
                for event in batch for hook in hooks[event.tenant_id] if service.wants(hook, event.type)]
        if not rows:
            return
        async with transaction(self.sessions) as session:
            session.add_all(rows)
        self.wake()

    async def drain(self) -> None:
        """Wait until every queued event has its deliveries written (shutdown, tests)."""
        await self._intake.join()

    # --- sending -----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                handled = await self.run_once()
                await self._prune_now_and_then()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatch round failed")
                handled = 0
            if handled >= BATCH:
                continue  # more may be due right away
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.webhook_poll_interval)

    async def run_once(self) -> int:
        """Claim what is due, send it, record the outcomes; returns how many rows were due."""
        now = self.now()
        async with transaction(self.sessions, write=False) as session:
            due = await repository.due_ids(session, now, BATCH)
        if not due:
            return 0
        token = secrets.token_hex(8)
        until = now + timedelta(seconds=self.settings.webhook_timeout + CLAIM_MARGIN)
        async with transaction(self.sessions) as session:
            mine = [d for d in due if await repository.claim(session, d, now, until, token)]
        await asyncio.gather(*(self._attempt(d, token) for d in mine))
        return len(due)

    async def _prune_now_and_then(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time < self._next_prune:
            return
        self._next_prune = loop_time + PRUNE_EVERY
        async with transaction(self.sessions) as session:
            removed = await repository.prune(session, self.now() - RETENTION)
        if removed:
            log.info("pruned %d finished webhook deliveries", removed)

    async def _attempt(self, delivery_id: str, token: str) -> None:
        try:
            async with transaction(self.sessions, write=False) as session:
                delivery = await repository.claimed(session, delivery_id, token)
                hook = await repository.hook_by_id(session, delivery.webhook_id) if delivery else None
            if delivery is None or hook is None:
                return  # the hook was deleted meanwhile (its deliveries with it)
            if not hook.active and delivery.event_type != TEST_EVENT:
                await self._record(delivery_id, token, None)
                return
            try:
                secret = self.box.open(hook.secret_encrypted)
            except signing.SecretError as exc:
                outcome = sender.Outcome(False, None, None, str(exc))
            else:
                body = delivery.payload.encode()
                headers = sender.headers_for(delivery.id, delivery.event_type, body, secret)
                outcome = await sender.send(self.client, hook.url, headers, body,
                                            self.settings.webhook_private_allowed, self.settings.webhook_timeout)
            await self._record(delivery_id, token, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery_id)

    async def _record(self, delivery_id: str, token: str, outcome: sender.Outcome | None) -> None:
        """Store one attempt's outcome (None: the hook was disabled, the delivery is cancelled)."""
        now = self.now()
        async with transaction(self.sessions) as session:
            delivery = await repository.claimed(session, delivery_id, token)
            if delivery is None:
                return
            delivery.claimed_until = None
            delivery.claim_token = None
            if outcome is None:
                delivery.status, delivery.next_attempt_at, delivery.error = "cancelled", None, "webhook is inactive"
                return
            delivery.attempt += 1
            delivery.attempts = [*(delivery.attempts or []), {
                "attempt": delivery.attempt, "attempted_at": iso(now), "status_code": outcome.status_code,
                "duration_ms": outcome.duration_ms, "error": outcome.error,
            }]
            delivery.status_code, delivery.duration_ms = outcome.status_code, outcome.duration_ms
            delivery.error = outcome.error
            delivery.last_attempt_at = now
            if outcome.ok:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
                await repository.count_success(session, delivery.webhook_id, now)
                log.info("webhook delivery %s sent (HTTP %s)", delivery.id, outcome.status_code)
                return
            exhausted = delivery.attempt >= service.MAX_ATTEMPTS
            if exhausted:
                delivery.status, delivery.next_attempt_at = "failed", None
            else:
                delivery.next_attempt_at = now + timedelta(seconds=service.RETRY_DELAYS[delivery.attempt - 1])
            newly_failing = await repository.count_failure(session, delivery.webhook_id, now, exhausted)
            log.warning("webhook delivery %s attempt %d failed: %s", delivery.id, delivery.attempt, outcome.error)
            if newly_failing:
                await audit.record(
                    session, Actor(actor_type="system", tenant_id=delivery.tenant_id), "webhook.failing",
                    resource_type="webhook", resource_id=delivery.webhook_id,
                    metadata={"delivery_id": delivery.id, "event": delivery.event_type, "attempts": delivery.attempt,
                              "error": outcome.error},
                )

    async def close(self) -> None:
        await self.client.aclose()


def dispatcher_of(app: FastAPI) -> Dispatcher | None:
    found: Dispatcher | None = getattr(app.state, STATE_KEY, None)
    return found


async def start(app: FastAPI) -> Callable[[], Awaitable[None]]:
    runtime = app.state.runtime
    if runtime.settings.webhook_clock_skew and getattr(app.state, CLOCK_KEY, None) is None:
        setattr(app.state, CLOCK_KEY, SkewedClock(runtime.settings.webhook_clock_skew))
    dispatcher = Dispatcher(app.state, runtime.sessions, runtime.settings)
    setattr(app.state, STATE_KEY, dispatcher)
    unsubscribe = app.state.events.subscribe(dispatcher.on_event)  # local: once per event cluster-wide
    tasks = [asyncio.create_task(dispatcher.run_intake(), name="ronda-webhooks-intake"),
             asyncio.create_task(dispatcher.run(), name="ronda-webhooks")]

    async def stop() -> None:
        unsubscribe()
        try:
            async with asyncio.timeout(5.0):
                await dispatcher.drain()  # events already published still get their deliveries
        except TimeoutError:
            log.warning("webhook intake not drained at shutdown; some events get no delivery")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dispatcher.close()

    return stop

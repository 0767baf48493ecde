"""The event bus: services queue domain events on their session; they go out after commit.

How to use it
-------------
- In a request (or any unit of work): `events.queue(session, "device.discovered", tenant_id, {...})`.
  The unit of work (core/uow.py) publishes the queued events once the transaction has committed and
  drops them on rollback, so no subscriber ever hears of a change that did not happen.
- Outside a request (runners, sweepers, alert rules): `async with events.transaction(app.state.sessions,
  app.state.events) as session:` is core.db.transaction plus the same publish-after-commit.
- Ephemeral progress (nothing to commit): `await app.state.events.publish(type, tenant_id, data)`.
  Never publish from inside an open write transaction: a local subscriber may want to write.
- `data` must be JSON-serialisable (orjson: datetimes become ISO strings on the wire).

Two kinds of subscribers
------------------------
- `bus.subscribe(callback)` — LOCAL (the default): runs once per event across the whole cluster, in the
  process that published it, awaited inside `publish`. For work that must happen exactly once: alert
  rules, webhook deliveries. Keep it fast (hand heavy work to your own queue/task); an exception is
  logged, never raised to the publisher.
- `bus.subscribe(callback, broadcast=True)` — BROADCAST: runs in every server process for every event
  of every process (WebSocket streams). Must not block: put the event on a bounded queue and return.

Both return a function that unsubscribes. Callbacks may be plain or async functions of one `Event`.

Transport
---------
Embedded mode (no RONDA_REDIS_URL): in-process only. Scaled mode: every published event is also sent as
JSON (`id, type, tenant_id, data, occurred_at, origin`) on the Redis pub/sub channel `ronda:<db>:events`
by a sender task (publishing never waits on Redis); a listener task in each process hands events of
OTHER processes (by `origin`) to its broadcast subscribers. Both reconnect after Redis errors; events
published while Redis is unreachable are kept in a bounded buffer and sent once it is back.
`start()` and `close()` are called by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.core.db import transaction as db_transaction
from ronda.core.ids import new_id
from ronda.core.timeutil import as_utc, iso, utcnow

log = logging.getLogger("ronda.events")

QUEUE_KEY = "ronda_events"
OUTBOX_LIMIT = 10_000  # events kept for Redis while it is unreachable (oldest dropped first)
SEND_BATCH = 500  # events per pipelined round trip
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
START_WAIT = 2.0  # seconds start() waits for the Redis subscription

# The shared event names (see the common brief); streams accept these (or their wire names) in
# `events=` filters. A new event type belongs here.
EVENT_TYPES: tuple[str, ...] = (
    "scan.queued", "scan.started", "scan.progress", "scan.host_found", "scan.port_found", "scan.completed",
    "scan.failed", "scan.cancelled",
    "device.discovered", "device.updated", "device.offline", "device.port_opened", "device.compliance_changed",
    "agent.offline",
    "alert.created", "alert.acknowledged", "alert.resolved",
    "cve.matched",
    "service.review_overdue", "service.created", "service.deleted", "service.reviewed", "service.status_changed",
    "report.requested", "report.completed", "report.failed",
    "webhook.test",
)
# WebSocket names that are not simply the type with "." replaced by "_" (product.md §7).
WIRE_NAMES: dict[str, str] = {
    "scan.host_found": "host_found",
    "scan.port_found": "port_found",
    "scan.completed": "scan_complete",
    "scan.failed": "scan_failed",
    "alert.created": "alert_created",
    "device.updated": "device_updated",
}


def wire_name(event_type: str) -> str:
    """The event's name on a WebSocket: `scan.completed` -> `scan_complete`, `agent.offline` -> `agent_offline`."""
    return WIRE_NAMES.get(event_type) or event_type.replace(".", "_")


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    tenant_id: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: new_id("evt"))
    occurred_at: datetime = field(default_factory=utcnow)
    origin: str = ""  # the publishing bus (process); set by EventBus.send

    def to_json(self) -> bytes:
        return orjson.dumps({
            "id": self.id, "type": self.type, "tenant_id": self.tenant_id, "data": self.data,
            "occurred_at": iso(self.occurred_at), "origin": self.origin,
        })

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        body = orjson.loads(raw)
        occurred = as_utc(datetime.fromisoformat(str(body["occurred_at"]).replace("Z", "+00:00")))
        return cls(type=str(body["type"]), tenant_id=str(body["tenant_id"]), data=dict(body.get("data") or {}),
                   id=str(body["id"]), occurred_at=occurred or utcnow(), origin=str(body.get("origin") or ""))


Subscriber = Callable[[Event], Awaitable[None] | None]


def channel_for(redis_url: str) -> str:
    """Pub/sub ignores Redis database numbers: the number goes into the channel name instead, so
    deployments (and test runs) on different databases of one server do not hear each other."""
    path = urlsplit(redis_url).path.strip("/")
    return f"ronda:{path or '0'}:events"


class EventBus:
    """Delivers each event to local subscribers here, and to broadcast subscribers in every process."""

    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self.channel = channel_for(redis_url) if redis_url else ""
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._local: list[Subscriber] = []
        self._broadcast: list[Subscriber] = []
        self._outbox: deque[bytes] = deque(maxlen=OUTBOX_LIMIT)
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.listening = asyncio.Event()  # set once the Redis listener is subscribed (tests wait on it)

    # --- subscribing ---------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber, *, broadcast: bool = False) -> Callable[[], None]:
        """Register a callback (plain or async); returns a function that unsubscribes it."""
        target = self._broadcast if broadcast else self._local
        target.append(callback)

        def unsubscribe() -> None:
            if callback in target:
                target.remove(callback)

        return unsubscribe

    # --- publishing ----------------------------------------------------------------------------

    async def publish(self, event_type: str, tenant_id: str, data: dict[str, Any]) -> Event:
        event = Event(event_type, tenant_id, dict(data))
        return await self.send(event)

    async def send(self, event: Event) -> Event:
        """Publish an already built event (queued ones keep their id and time)."""
        if event.origin != self.origin:
            event = Event(event.type, event.tenant_id, event.data, event.id, event.occurred_at, self.origin)
        if self.redis_url and not self._closing:
            if len(self._outbox) == OUTBOX_LIMIT:
                log.warning("event bus: Redis unreachable and %d events waiting; dropping the oldest", OUTBOX_LIMIT)
            try:
                self._outbox.append(event.to_json())
            except TypeError:
                log.exception("event %s has data that is not JSON-serialisable; not sent to Redis", event.type)
            else:
                self._ensure_sender()
                self._wakeup.set()
        await self.deliver(event)
        return event

    async def deliver(self, event: Event) -> None:
        """Hand an event to this process's subscribers (local ones only for events published here)."""
        callbacks = list(self._broadcast)
        if event.origin in ("", self.origin):
            callbacks = list(self._local) + callbacks
        for callback in callbacks:
            await _call(callback, event)

    async def _deliver_remote(self, event: Event) -> None:
        for callback in list(self._broadcast):
            await _call(callback, event)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the Redis listener (scaled mode); a no-op in embedded mode."""
        if self.redis_url and not any(t.get_name() == "ronda-events-listener" for t in self._tasks):
            self._tasks.append(asyncio.create_task(self._listen(), name="ronda-events-listener"))
            self._ensure_sender()
            # Briefly wait for the subscription, so a process that answers has heard everything since;
            # an unreachable Redis does not hold up start-up (the listener keeps retrying).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.listening.wait(), START_WAIT)

    async def close(self) -> None:
        """Send what is still queued for Redis (briefly), then stop the tasks."""
        if self._outbox and self.redis_url:
            for _ in range(50):
                if not self._outbox:
                    break
                self._wakeup.set()
                await asyncio.sleep(0.02)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _ensure_sender(self) -> None:
        if self._closing or any(t.get_name() == "ronda-events-sender" and not t.done() for t in self._tasks):
            return
        # Without a running loop (a synchronous caller) the next publish starts it.
        with contextlib.suppress(RuntimeError):
            self._tasks.append(asyncio.create_task(self._send_loop(), name="ronda-events-sender"))

    async def _send_loop(self) -> None:
        import redis.asyncio as aioredis

        attempt = 0
        while not self._closing:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
            try:
                while not self._closing:
                    if not self._outbox:
                        self._wakeup.clear()
                        await self._wakeup.wait()
                        continue
                    batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), SEND_BATCH))]
                    try:
                        async with client.pipeline(transaction=False) as pipe:
                            for raw in batch:
                                pipe.publish(self.channel, raw)
                            await pipe.execute()
                    except BaseException:
                        self._outbox.extendleft(reversed(batch))  # sent again after reconnecting
                        raise
                    attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event bus: cannot publish to Redis (%s); retrying", exc)
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        attempt = 0
        while not self._closing:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening.set()
                attempt = 0
                while not self._closing:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        event = Event.from_json(message["data"])
                    except (ValueError, KeyError, TypeError):
                        log.warning("event bus: ignoring a malformed message on %s", self.channel)
                        continue
                    if event.origin != self.origin:
                        await self._deliver_remote(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("event bus: Redis subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()


async def _call(callback: Subscriber, event: Event) -> None:
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("event subscriber failed on %s", event.type)


def queue(session: AsyncSession, event_type: str, tenant_id: str, data: dict[str, Any]) -> None:
    """Publish `event_type` once the session's transaction commits (nothing if it rolls back)."""
    pending: list[Event] = session.info.setdefault(QUEUE_KEY, [])
    pending.append(Event(event_type, tenant_id, dict(data)))


def take(session: AsyncSession) -> list[Event]:
    """Remove and return the session's queued events."""
    pending: list[Event] = session.info.pop(QUEUE_KEY, [])
    return pending


def discard(session: AsyncSession) -> None:
    session.info.pop(QUEUE_KEY, None)


async def flush_to(bus: EventBus | None, session: AsyncSession) -> None:
    """After a successful commit: deliver what the session queued."""
    pending = take(session)
    if bus is None:
        return
    for event in pending:
        await bus.send(event)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], bus: EventBus | None, *, write: bool = True
) -> AsyncIterator[AsyncSession]:
    """core.db.transaction for work outside a request: queued events are published after the commit
    (and dropped if the block raises)."""
    session_ref: list[AsyncSession] = []
    try:
        async with db_transaction(sessions, write=write) as session:
            session_ref.append(session)
            yield session
    except BaseException:
        if session_ref:
            discard(session_ref[0])
        raise
    await flush_to(bus, session_ref[0])

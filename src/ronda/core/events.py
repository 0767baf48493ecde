"""A minimal in-process event bus: services queue events on their session; they go out after commit.

A service calls `queue(session, "device.compliance_changed", tenant_id, {...})`. The unit of work
(core/uow.py) hands the queued events to `app.state.events.publish` only once the transaction has
committed, and drops them on rollback, so no subscriber ever hears of a change that did not happen.
Subscribers run in the server process; a later issue puts Redis behind the same interface.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow

log = logging.getLogger("ronda.events")

QUEUE_KEY = "ronda_events"


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    tenant_id: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: new_id("evt"))
    occurred_at: datetime = field(default_factory=utcnow)


Subscriber = Callable[[Event], Awaitable[None] | None]


class EventBus:
    """Delivers each published event to every subscriber; a failing subscriber is logged, not raised."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Register a callback (plain or async); returns a function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def publish(self, event_type: str, tenant_id: str, data: dict[str, Any]) -> Event:
        event = Event(event_type, tenant_id, dict(data))
        await self.deliver(event)
        return event

    async def deliver(self, event: Event) -> None:
        for callback in list(self._subscribers):
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
        await bus.publish(event.type, event.tenant_id, event.data)

"""One broadcast bus subscriber per app for every WebSocket: events go only to the connections of
their tenant (and to super admins following every tenant), so a busy server does not test each
event against every open connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import FastAPI

from ronda.core.events import Event, EventBus


class Listener(Protocol):
    def on_event(self, event: Event) -> None: ...


class StreamHub:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.by_tenant: dict[str, set[Listener]] = {}
        self.everywhere: set[Listener] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def add(self, tenant_id: str | None, listener: Listener) -> Callable[[], None]:
        """Deliver `tenant_id`'s events (every tenant's for None) to the listener until the returned
        function is called."""
        group = self.everywhere if tenant_id is None else self.by_tenant.setdefault(tenant_id, set())
        group.add(listener)
        if self._unsubscribe is None:
            self._unsubscribe = self.bus.subscribe(self.deliver, broadcast=True)

        def remove() -> None:
            group.discard(listener)
            if tenant_id is not None and not group:
                self.by_tenant.pop(tenant_id, None)

        return remove

    def deliver(self, event: Event) -> None:
        for listener in (*self.by_tenant.get(event.tenant_id, ()), *self.everywhere):
            listener.on_event(event)


def hub_of(app: FastAPI) -> StreamHub:
    hub: StreamHub | None = getattr(app.state, "stream_hub", None)
    if hub is None or hub.bus is not app.state.events:
        hub = app.state.stream_hub = StreamHub(app.state.events)
    return hub

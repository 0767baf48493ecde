"""One WebSocket connection: authenticate, choose events, then pump them with pings until either
side leaves. Events reach the connection through a bounded queue filled by a broadcast bus
subscriber, so a slow client never holds up the bus: when its queue is full it is closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any

import orjson
from fastapi import WebSocket
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ronda.config import Settings
from ronda.core.events import Event
from ronda.core.tenancy import scoped
from ronda.core.timeutil import iso, utcnow
from ronda.streams.auth import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    StreamCaller,
    StreamRefused,
    authenticate,
    current_principal,
)
from ronda.streams.filters import (
    DOMAIN_PERMISSIONS,
    TERMINAL_SCAN_EVENTS,
    Selector,
    check_permission,
    message,
    parse_filter,
)
from ronda.streams.hub import hub_of

log = logging.getLogger("ronda.streams")

# stream -> (event domains carried, permission needed to connect)
STREAMS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "events": (tuple(DOMAIN_PERMISSIONS), None),
    "alerts": (("alert",), "alerts_read"),
    "scan": (("scan", "device"), "scans_read"),
}
TERMINAL_SCAN_STATUSES = ("completed", "failed", "cancelled")
CLOSE_TIMEOUT = 5.0  # seconds to wait for a close frame to go out
MAX_CLIENT_MESSAGE = 4096  # bytes of one client message (a ping is a few bytes)
CLOSE_TOO_BIG = 1009  # RFC 6455: message too big


def _dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode()


async def _scan_status(websocket: WebSocket, caller: StreamCaller, scan_id: str) -> dict[str, Any]:
    """The scan's state now (the first message of a scan stream); 4404 for another tenant's scan."""
    from ronda.scans.models import Scan

    async with websocket.app.state.sessions() as session:
        scan = (await session.scalars(scoped(select(Scan).where(Scan.id == scan_id), Scan,
                                             caller.principal))).one_or_none()
    if scan is None:
        raise StreamRefused(CLOSE_NOT_FOUND, "Scan not found")
    return {
        "scan_id": scan.id, "status": scan.status, "progress_percent": scan.progress_percent,
        "hosts_found": scan.hosts_found, "ports_found": scan.ports_found,
        "estimated_completion": iso(scan.estimated_completion), "started_at": iso(scan.started_at),
        "completed_at": iso(scan.completed_at),
    }


def _is_ping(text: str) -> bool:
    """`ping`, or a JSON message `{"event": "ping"}` (or `{"type": "ping"}`)."""
    if text.strip().lower() == "ping":
        return True
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and "ping" in (body.get("event"), body.get("type"))


async def _refuse(websocket: WebSocket, refusal: StreamRefused) -> None:
    # Accepted first so the client reads the code and reason (a refused handshake carries neither).
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    await websocket.close(code=refusal.code, reason=refusal.reason)


async def serve(websocket: WebSocket, stream: str, *, scan_id: str | None = None) -> None:
    domains, permission = STREAMS[stream]
    params = websocket.query_params
    try:
        caller = await authenticate(websocket)
        check_permission(caller.principal, permission)
        wanted = parse_filter(params.get("events"), domains)
        all_tenants = params.get("all_tenants", "").lower() in ("1", "true", "yes")
        if all_tenants and caller.principal.role != "super_admin":
            raise StreamRefused(CLOSE_FORBIDDEN, "Only a super admin may follow every tenant")
        snapshot = await _scan_status(websocket, caller, scan_id) if scan_id is not None else None
    except StreamRefused as refusal:
        await _refuse(websocket, refusal)
        return
    selector = Selector(caller.principal, domains, wanted, all_tenants, scan_id)
    await websocket.accept()
    connection = Connection(websocket, caller, selector, websocket.app.state.runtime.settings, permission)
    await connection.run(snapshot)


class Connection:
    def __init__(self, websocket: WebSocket, caller: StreamCaller, selector: Selector, settings: Settings,
                 permission: str | None) -> None:
        self.websocket = websocket
        self.caller = caller
        self.selector = selector
        self.permission = permission  # what the stream needs at all (re-checked on each ping)
        self.ping_interval = settings.ws_ping_interval
        self.queue: asyncio.Queue[Event] = asyncio.Queue(settings.ws_queue_size)
        self.overflowed = asyncio.Event()

    def on_event(self, event: Event) -> None:
        """Broadcast subscriber: never blocks, never raises into the bus."""
        if self.overflowed.is_set() or not self.selector.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()

    async def run(self, snapshot: dict[str, Any] | None) -> None:
        tenant = None if self.selector.all_tenants else self.selector.principal.tenant_id
        unsubscribe = hub_of(self.websocket.app).add(tenant, self)
        tasks: list[asyncio.Task[Any]] = []
        try:
            if snapshot is not None:
                await self._send("scan_status", snapshot)
                if snapshot["status"] in TERMINAL_SCAN_STATUSES:
                    await self.websocket.close(code=1000, reason=f"scan {snapshot['status']}")
                    return
            tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._receive()),
                     asyncio.create_task(self._ping())]
            overflow = asyncio.create_task(self.overflowed.wait())
            tasks.append(overflow)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if overflow in done:
                await self._close(CLOSE_TOO_SLOW, f"client too slow: more than {self.queue.maxsize} events behind")
            for task in done:
                if not task.cancelled() and task.exception() is not None and not isinstance(
                        task.exception(), WebSocketDisconnect | RuntimeError | OSError):
                    log.warning("stream task failed", exc_info=task.exception())
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            unsubscribe()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _send(self, name: str, data: dict[str, Any], timestamp: str | None = None) -> None:
        payload = {"event": name, "timestamp": timestamp or iso(utcnow()), "data": data}
        await self.websocket.send_text(_dumps(payload))

    async def _close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            # Bounded: a client that stopped reading may never take the close frame either.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.close(code=code, reason=reason[:120]), CLOSE_TIMEOUT)

    async def _pump(self) -> None:
        while True:
            event = await self.queue.get()
            await self.websocket.send_text(_dumps(message(event)))
            if self.selector.scan_id is not None and event.type in TERMINAL_SCAN_EVENTS:
                await self._close(1000, "scan finished")
                return

    async def _receive(self) -> None:
        """Client messages: `ping` (plain or as an event) gets a `pong`; the rest is ignored. A message
        over MAX_CLIENT_MESSAGE closes the socket with 1009: clients only ever need to send pings."""
        while True:
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            size = len(text.encode()) if text is not None else len(received.get("bytes") or b"")
            if size > MAX_CLIENT_MESSAGE:
                await self._close(CLOSE_TOO_BIG, f"message too big: {size} bytes, at most {MAX_CLIENT_MESSAGE}")
                return
            if _is_ping(text or ""):
                await self._send("pong", {})

    async def _ping(self) -> None:
        """Pings keep proxies from closing an idle socket; each one re-checks the credential."""
        while True:
            await asyncio.sleep(self.ping_interval)
            principal = await current_principal(self.websocket, self.caller)
            if principal is None:
                await self._close(CLOSE_UNAUTHORIZED, "Credentials expired or revoked")
                return
            if principal.permissions != self.selector.principal.permissions:
                if self.permission is not None and self.permission not in principal.permissions:
                    await self._close(CLOSE_FORBIDDEN, f"Missing permission: {self.permission}")
                    return
                self.selector = replace(self.selector, principal=principal)
            await self._send("ping", {})

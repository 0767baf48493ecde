"""WebSocket streams: /ws/events, /ws/alerts and /ws/scans/{id} (also under /api/v1, /api and /v1).

Messages are `{"event": <wire name>, "timestamp": <ISO>, "data": {...}}`; `events=a,b` (bus or wire
names) narrows a stream; the server sends `{"event": "ping"}` every RONDA_WS_PING_INTERVAL seconds
and answers a client's `ping` with `pong`. Refusals close the socket with 44xx codes (see auth.py)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from ronda.streams.session import serve

router = APIRouter(tags=["streams"])


@router.websocket("/ws/events", name="ws_events")
async def events_stream(websocket: WebSocket) -> None:
    """Every event of the caller's tenant that its permissions cover."""
    await serve(websocket, "events")


@router.websocket("/ws/alerts", name="ws_alerts")
async def alerts_stream(websocket: WebSocket) -> None:
    """alert_created, alert_acknowledged and alert_resolved (alerts_read)."""
    await serve(websocket, "alerts")


@router.websocket("/ws/scans/{scan_id}", name="ws_scan")
async def scan_stream(websocket: WebSocket, scan_id: str) -> None:
    """One scan's progress: scan_status first, then its events until it finishes (scans_read)."""
    await serve(websocket, "scan", scan_id=scan_id)

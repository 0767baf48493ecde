"""What the fault tests share: the check-in they send, and how a WebSocket stream is ended."""

from __future__ import annotations

import asyncio
import contextlib

from tests.conftest import LiveServer

REPORT = "/api/v1/devices/report"
DEVICES = "/api/v1/devices"


def report(serial: str, packages: int = 5, revision: int = 1) -> dict[str, object]:
    return {
        "device_name": f"fault {serial}",
        "serial_number": serial,
        "device_type": "laptop",
        "os_type": "linux",
        "os_version": f"rev-{revision}",
        "security": {"disk_encryption": True, "firewall_enabled": True, "screen_lock_enabled": True},
        "software": {"applications": [{"name": f"package-{serial}-{i}-{'x' * 40}", "version": f"{revision}.{i}"}
                                      for i in range(packages)]},
    }


async def stream_close_code(live: LiveServer, token: str) -> int | None:
    """Open /ws/events and return the close code the server ends it with."""
    import websockets

    url = live.url.replace("http://", "ws://") + f"/ws/events?token={token}"
    async with websockets.connect(url, open_timeout=5) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        await asyncio.wait_for(ws.wait_closed(), 5)
        return ws.close_code

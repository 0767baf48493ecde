"""Turns a scan subprocess's JSON lines into bus events and (throttled) progress writes (runner.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ronda.core.timeutil import iso, utcnow
from ronda.scanner import ScanResult
from ronda.scans import repository
from ronda.scans.models import Scan

if TYPE_CHECKING:
    from ronda.scans.runner import ScanRunner

SAVE_EVERY = 1.0  # progress is written at most this often
PUBLISH_EVERY = 0.25  # scan.progress events at most this often


class Relay:
    """Turns a worker's JSON lines into bus events and (throttled) progress writes."""

    def __init__(self, runner: ScanRunner, scan: Scan) -> None:
        self.runner = runner
        self.scan = scan
        self.result: ScanResult | None = None
        self.error: str | None = None
        self.hosts_found = 0
        self.ports_found = 0
        self.progress: dict[str, Any] = {}
        self.saved_at = 0.0
        self.published_at = 0.0

    async def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        await self.runner.bus.publish(event_type, self.scan.tenant_id, {"scan_id": self.scan.id, **data})

    async def handle(self, message: dict[str, Any]) -> bool:
        """False once the scan is no longer running in the database (stopped elsewhere)."""
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "host_found":
            self.hosts_found += 1
            await self._publish("scan.host_found", {name: data.get(name) for name in
                                                    ("ip", "hostname", "mac", "vendor", "os_guess", "device_type")})
        elif kind == "port_found":
            self.ports_found += 1
            await self._publish("scan.port_found", {name: data.get(name) for name in
                                                    ("ip", "port", "protocol", "service", "product", "version")})
        elif kind == "progress":
            self.progress = data
        elif kind == "result":
            self.result = ScanResult.from_dict(data)
            return True
        elif kind == "error":
            self.error = str(data.get("message") or "the scanner refused its options")[:500]
            return True
        return await self._tick()

    def _values(self) -> dict[str, Any]:
        percent = float(self.progress.get("progress_percent") or 0.0)
        eta = self.progress.get("eta_seconds")
        estimated = utcnow() + timedelta(seconds=float(eta)) if isinstance(eta, int | float) and eta >= 0 else None
        return {
            "progress_percent": max(0.0, min(percent, 99.9)),
            "hosts_found": max(self.hosts_found, int(self.progress.get("hosts_found") or 0)),
            "ports_found": max(self.ports_found, int(self.progress.get("ports_found") or 0)),
            "probes_sent": int(self.progress.get("probes_sent") or 0),
            "estimated_completion": estimated,
        }

    async def _tick(self) -> bool:
        clock = asyncio.get_running_loop().time()
        values = self._values()
        if clock - self.published_at >= PUBLISH_EVERY:
            self.published_at = clock
            await self._publish("scan.progress", {
                "progress_percent": round(values["progress_percent"], 1), "hosts_found": values["hosts_found"],
                "ports_found": values["ports_found"], "estimated_completion": iso(values["estimated_completion"]),
            })
        if clock - self.saved_at < SAVE_EVERY:
            return True
        self.saved_at = clock
        now = utcnow()
        async with self.runner.unit() as session:
            return await repository.save_progress(session, self.scan.id, self.runner.runner_id,
                                                  {**values, "heartbeat_at": now, "updated_at": now})

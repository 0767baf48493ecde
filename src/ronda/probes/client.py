"""`ronda probe --server URL --key K`: a remote sensor for one site.

It long-polls the server's probe API for a queued scan of its site, runs it here with the scanner
library (ronda.scanner.run_scan), reports progress (and the hosts and ports found) about once a
second, which renews its lease, then posts the result, which the server merges like a local scan's.
A scan stopped on the server is cancelled here at the next report. SIGTERM/SIGINT: the running scan
is reported failed, then the probe exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import httpx

from ronda import __version__
from ronda.scanner import ScanEvent, ScanInputError, ScanOptions, ScanResult, run_scan

log = logging.getLogger("ronda.probe")

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
HOST_FIELDS = {"ip": 45, "hostname": 255, "mac": 40, "vendor": 200, "os_guess": 200, "device_type": 40}
PORT_FIELDS = {"ip": 45, "protocol": 8, "service": 100, "product": 200, "version": 100}
RESULT_TRIES = 5


class Refused(Exception):
    """The server refuses the key (revoked, unknown, not a probe key): retrying cannot help."""


def _clip(data: dict[str, Any], fields: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, size in fields.items():
        value = data.get(name)
        out[name] = str(value)[:size] if value is not None else None
    return out


class Probe:
    def __init__(self, server: str, key: str, *, wait: float = 25.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=server.rstrip("/") + "/api/v1", timeout=wait + 15,
            headers={"Authorization": f"Bearer {key}", "User-Agent": f"ronda-probe/{__version__}"},
        )
        self.wait = wait
        self.stopping = asyncio.Event()

    async def close(self) -> None:
        await self.http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(path, json=body)
        if response.status_code in (401, 403):
            raise Refused(f"{response.status_code}: {response.text[:200]}")
        return response

    async def run(self, *, once: bool = False) -> int:
        """Lease and run scans until stopped (or, with `once`, after the first scan)."""
        failures = 0
        while not self.stopping.is_set():
            try:
                response = await self._lease()
            except Refused as exc:
                log.error("the server refuses this probe's key: %s", exc)
                return 2
            except httpx.HTTPError as exc:
                response = None
                log.warning("cannot reach the server: %s", exc)
            if response is None or response.status_code != 200:
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                continue
            failures = 0
            job = response.json().get("scan")
            if job is None:
                continue
            try:
                await self.run_job(job)
            except Refused as exc:
                log.error("the server refuses this probe's key: %s", exc)
                return 2
            if once:
                return 0
        return 0

    async def _lease(self) -> httpx.Response | None:
        """One long-poll; a stop request ends it at once (None)."""
        request = asyncio.create_task(self._post("/probes/lease", {"wait": self.wait, "version": __version__}))
        stopped = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({request, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not request.done():
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            return None
        return request.result()

    async def run_job(self, job: dict[str, Any]) -> None:
        scan_id = str(job["scan_id"])
        interval = max(0.2, min(1.0, float(job.get("lease_seconds") or 60) / 3))
        hosts: list[dict[str, Any]] = []
        ports: list[dict[str, Any]] = []
        progress: dict[str, Any] = {}

        def on_event(event: ScanEvent) -> None:
            if event.kind == "host_found":
                hosts.append(_clip(event.data, HOST_FIELDS))
            elif event.kind == "port_found":
                ports.append({**_clip(event.data, PORT_FIELDS), "port": int(event.data.get("port") or 0)})
            elif event.kind == "progress":
                progress.update(event.data)

        async def report() -> bool:
            body = {
                "progress_percent": max(0.0, min(float(progress.get("progress_percent") or 0.0), 100.0)),
                "hosts_found": int(progress.get("hosts_found") or 0),
                "ports_found": int(progress.get("ports_found") or 0),
                "probes_sent": int(progress.get("probes_sent") or 0),
                "eta_seconds": progress.get("eta_seconds") if isinstance(progress.get("eta_seconds"), int | float)
                and progress["eta_seconds"] >= 0 else None,
                "hosts": hosts[:], "ports": [p for p in ports if 1 <= p["port"] <= 65535],
            }
            try:
                response = await self._post(f"/probes/scans/{scan_id}/progress", body)
            except httpx.HTTPError as exc:
                log.warning("progress report for %s failed: %s", scan_id, exc)
                return True  # the lease allows a missed report or two
            if response.status_code != 200:
                log.warning("progress report for %s refused: %s", scan_id, response.text[:200])
                return response.status_code >= 500
            hosts.clear()
            ports.clear()
            return bool(response.json().get("keep_running"))

        log.info("running scan %s (%s)", scan_id, job.get("profile"))
        try:
            options = ScanOptions(**job["options"])
        except (TypeError, ValueError) as exc:
            await self._fail(scan_id, f"bad scan options: {exc}")
            return
        task: asyncio.Task[ScanResult] = asyncio.create_task(run_scan(options, on_event))
        while not task.done():
            await asyncio.wait({task}, timeout=interval)
            if task.done():
                break
            if self.stopping.is_set():
                task.cancel()
                await self._fail(scan_id, "the probe was stopped")
                return
            if not await report():
                log.info("scan %s was stopped on the server; cancelling it here", scan_id)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                return
        try:
            result = task.result()
        except asyncio.CancelledError:
            return
        except ScanInputError as exc:
            await self._fail(scan_id, str(exc))
            return
        except Exception as exc:
            log.exception("scan %s failed", scan_id)
            await self._fail(scan_id, f"scanner error: {type(exc).__name__}")
            return
        await report()
        await self._deliver(scan_id, result)

    async def _deliver(self, scan_id: str, result: ScanResult) -> None:
        for attempt in range(RESULT_TRIES):
            try:
                response = await self._post(f"/probes/scans/{scan_id}/result", result.to_dict())
            except httpx.HTTPError as exc:
                log.warning("posting the result of %s failed: %s", scan_id, exc)
            else:
                if response.status_code < 500:
                    if response.status_code != 200:
                        log.error("the server refused the result of %s: %s", scan_id, response.text[:300])
                    return
            await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])

    async def _fail(self, scan_id: str, reason: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self._post(f"/probes/scans/{scan_id}/fail", {"reason": reason[:500]})


async def run_probe(server: str, key: str, *, once: bool = False, wait: float = 25.0) -> int:
    probe = Probe(server, key, wait=wait)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, probe.stopping.set)
    try:
        return await probe.run(once=once)
    finally:
        await probe.close()

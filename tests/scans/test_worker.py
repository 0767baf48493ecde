"""`ronda worker` (RONDA_SCAN_EXECUTOR=workers): real worker processes lease queued scans from the
database, run them to completion on loopback listeners, publish their events through Redis to the API
servers, and a worker killed mid-scan loses its lease: the scan is re-queued once, then failed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ronda.core.events import Event
from tests.conftest import Factory, LiveServer
from tests.scans.helpers import SCANS, Listener, audit_records, start, wait_for

LEASE = "3"  # seconds: short, so a lost worker is noticed quickly
SLOW = {"target": "127.0.0.1", "profile": "custom", "ports": "1-20000", "max_rate": 200, "timeout_ms": 200,
        "enable_profiling": False}


@pytest.fixture
def spawn_worker(migrated: str, data_dir: object, redis_url: str) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        env = {**os.environ, "RONDA_DATABASE_URL": migrated, "RONDA_DATA_DIR": str(data_dir),
               "RONDA_SECRET_KEY": "test-secret-" + "x" * 40, "RONDA_LOG_LEVEL": "WARNING",
               "RONDA_SCAN_EXECUTOR": "workers", "RONDA_SCAN_LEASE_SECONDS": LEASE, "RONDA_REDIS_URL": redis_url}
        proc = subprocess.Popen([sys.executable, "-m", "ronda.cli", "worker"], env=env, stdout=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        proc.wait(timeout=15)


async def _server(server_factory: Any, redis_url: str) -> LiveServer:
    server: LiveServer = await server_factory(scan_executor="workers", scan_lease_seconds=float(LEASE),
                                              redis_url=redis_url)
    return server


async def test_a_worker_process_runs_a_queued_scan_to_completion(
    server_factory: Any, factory: Factory, redis_url: str, spawn_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    server = await _server(server_factory, redis_url)
    admin = await factory.user("admin")
    heard: list[Event] = []
    # A broadcast subscriber, as the WebSocket streams are: it hears events of other processes (the worker).
    server.app.state.events.subscribe(lambda e: heard.append(e) if e.tenant_id == admin.tenant_id else None,
                                      broadcast=True)
    listeners = [await Listener.open() for _ in range(2)]
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            ports = [item.port for item in listeners]
            scan = await start(http, admin.headers, target="127.0.0.1", profile="custom", ports=ports,
                               timeout_ms=300, enable_profiling=False)
            await asyncio.sleep(1.0)
            queued = (await http.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).json()
            assert queued["status"] == "queued", queued  # the server only queues; no worker yet
            worker = spawn_worker()
            done = await wait_for(http, admin.headers, scan["id"], {"completed", "failed"}, timeout=40)
            assert done["status"] == "completed", done
            assert done["hosts_found"] == 1 and done["ports_found"] == 2 and done["error"] is None
            result = (await http.get(f"{SCANS}/{scan['id']}/result", headers=admin.headers)).json()
            assert {p["port"] for p in result["devices"][0]["ports"]} == set(ports)
            devices = (await http.get("/api/v1/devices", headers=admin.headers, params={"search": "127.0.0.1"})).json()
            assert devices["meta"]["total"] == 1 and devices["data"][0]["ip"] == "127.0.0.1"
            deadline = time.monotonic() + 5
            while "scan.completed" not in [e.type for e in heard] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            types = [e.type for e in heard if e.data.get("scan_id") == scan["id"]]
            for name in ("scan.started", "scan.port_found", "scan.completed"):
                assert name in types, (name, types)
            assert worker.poll() is None  # still serving

            # A stop accepted by the server reaches the worker (Redis), which kills the scan's process.
            slow = await start(http, admin.headers, **SLOW)
            await wait_for(http, admin.headers, slow["id"], {"running"}, timeout=20)
            stopped = await http.post(f"{SCANS}/{slow['id']}/stop", headers=admin.headers)
            assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
            await asyncio.sleep(1.5)
            after = (await http.get(f"{SCANS}/{slow['id']}", headers=admin.headers)).json()
            assert after["status"] == "cancelled" and after["error"] is None, after
    finally:
        for item in listeners:
            await item.close()


async def _wait_status(http: httpx.AsyncClient, headers: dict[str, str], scan_id: str, status: str,
                       timeout: float = 20) -> dict[str, Any]:
    return await wait_for(http, headers, scan_id, {status}, timeout=timeout)


async def test_a_killed_worker_loses_its_lease_and_the_scan_is_requeued_then_failed(
    server_factory: Any, factory: Factory, redis_url: str, spawn_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    server = await _server(server_factory, redis_url)
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        scan = await start(http, admin.headers, **SLOW)
        # A worker stopped cleanly gives its scan back at once, without using an attempt.
        polite = spawn_worker()
        await _wait_status(http, admin.headers, scan["id"], "running")
        polite.terminate()
        assert await asyncio.to_thread(polite.wait, 15) == 0
        back = (await http.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).json()
        assert back["status"] == "queued" and back["error"] == "its worker stopped; re-queued", back
        for attempt in (1, 2):
            worker = spawn_worker()
            running = await _wait_status(http, admin.headers, scan["id"], "running")
            await asyncio.sleep(0.5)
            os.kill(worker.pid, signal.SIGKILL)  # no goodbye: only the lease tells
            worker.wait(timeout=10)
            after = await wait_for(http, admin.headers, scan["id"], {"queued", "failed", "completed"}, timeout=20)
            assert after["error"] is not None and "lease expired" in after["error"], after
            if attempt == 1:
                assert after["status"] == "queued" and "re-queued" in after["error"], after
                assert after["started_at"] is None and running["started_at"] is not None
                records = await audit_records(factory, admin.tenant_id, "scan.requeued", scan["id"])
                reasons = sorted(record.details["reason"] for record in records)
                assert len(reasons) == 2 and reasons[0] == "its worker stopped" and "lease expired" in reasons[1]
                assert {record.actor_type for record in records} == {"system"}
            else:
                assert after["status"] == "failed" and "attempt 2 of 2" in after["error"], after
                [record] = await audit_records(factory, admin.tenant_id, "scan.failed", scan["id"])
                assert "lease expired" in record.details["reason"]

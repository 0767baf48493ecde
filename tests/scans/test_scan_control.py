"""Stopping scans, the per-tenant limit, scans left behind by a dead server, and tenant isolation."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time

import httpx

from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.scans.models import Scan
from tests.conftest import Factory, LiveServer
from tests.scans.helpers import SCANS, audit_records, start, wait_for
from tests.support import assert_error

# All 65535 ports at 20 probes a second: runs for most of an hour unless stopped.
SLOW = {"target": "127.0.0.1", "profile": "stealth", "ports": "1-65535", "max_rate": 20, "timeout_ms": 200}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only the parent's reaping is left.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _group(pgid: int) -> list[int]:
    """Live processes of a process group (a scan and any sweep processes it started)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def _scan_workers_of(parent: int) -> list[int]:
    """The scan subprocesses a server process started (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"ronda.scans.worker_process" in command:
            found.append(int(entry))
    return found


async def test_stop_kills_a_running_scan(client: httpx.AsyncClient, factory: Factory, live: LiveServer) -> None:
    admin = await factory.user("admin")
    scan = await start(client, admin.headers, **SLOW)
    running = await wait_for(client, admin.headers, scan["id"], {"running", "completed", "failed"})
    assert running["status"] == "running", running
    runner = live.app.state.scan_runner
    for _ in range(100):
        if scan["id"] in runner.processes:
            break
        await asyncio.sleep(0.05)
    pid = runner.processes[scan["id"]].pid
    assert _alive(pid) and pid in _group(pid)
    # The API stays responsive while the scan runs (it runs in its own process).
    began = time.monotonic()
    assert (await client.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).status_code == 200
    assert time.monotonic() - began < 2.0

    began = time.monotonic()
    stopped = await client.post(f"{SCANS}/{scan['id']}/stop", headers=admin.headers)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "cancelled" and stopped.json()["completed_at"]
    while _alive(pid) or _group(pid):
        assert time.monotonic() - began < 5, f"the scan's processes outlived its stop: {_group(pid)}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    after = (await client.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).json()
    assert after["status"] == "cancelled"

    again = await client.post(f"{SCANS}/{scan['id']}/stop", headers=admin.headers)
    assert_error(again, 409, "CONFLICT")
    [record] = await audit_records(factory, admin.tenant_id, "scan.stopped", scan["id"])
    assert record.actor_id == admin.id and record.details["previous_status"] == "running"


async def test_per_tenant_concurrency_limit(server_factory: object, factory: Factory) -> None:
    server = await server_factory(scan_max_concurrent=1)  # type: ignore[operator]
    admin = await factory.user("operator")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        first = await start(http, admin.headers, **SLOW)
        refused = await http.post(f"{SCANS}/start", headers=admin.headers, json=SLOW)
        body = assert_error(refused, 429, "RATE_LIMITED")
        assert "1 scan" in body["detail"] and refused.headers["Retry-After"]
        # Another tenant has its own allowance.
        other = await factory.user("admin")
        theirs = await start(http, other.headers, **SLOW)
        for scan, who in ((first, admin), (theirs, other)):
            assert (await http.post(f"{SCANS}/{scan['id']}/stop", headers=who.headers)).status_code == 200
        # A stopped scan frees its slot.
        third = await start(http, admin.headers, **SLOW)
        assert (await http.post(f"{SCANS}/{third['id']}/stop", headers=admin.headers)).status_code == 200


async def test_scans_left_by_a_dead_server_are_failed_at_start(server_factory: object, factory: Factory) -> None:
    tenant = await factory.tenant()
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = utcnow()
    common = {"tenant_id": tenant, "target": "127.0.0.1", "networks": ["127.0.0.1/32"], "target_key": "x",
              "profile": "quick", "options": {}, "progress_percent": 40.0, "hosts_total": 1, "hosts_found": 0,
              "ports_found": 0, "probes_sent": 0}
    async with transaction(factory.runtime.sessions) as session:
        running = Scan(status="running", runner_id=f"{socket.gethostname()[:60]}:{dead.pid}:gone",
                       heartbeat_at=now, started_at=now, **common)
        queued = Scan(status="queued", runner_id=None, heartbeat_at=None, **common)
        session.add_all([running, queued])
    await server_factory()  # type: ignore[operator]
    async with transaction(factory.runtime.sessions, write=False) as session:
        for scan_id in (running.id, queued.id):
            scan = await session.get(Scan, scan_id)
            assert scan is not None and scan.status == "failed", scan_id
            assert scan.error is not None and "server restarted" in scan.error and scan.completed_at is not None
    [record] = await audit_records(factory, tenant, "scan.failed", running.id)
    assert record.actor_type == "system" and "server restarted" in record.details["reason"]


async def test_another_tenants_scan_is_not_found(client: httpx.AsyncClient, factory: Factory) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    scan = await start(client, theirs.headers, target="127.0.0.1", profile="custom", ports=[1], timeout_ms=100,
                       enable_profiling=False)
    for method, path in (("GET", ""), ("GET", "/result"), ("POST", "/stop")):
        response = await client.request(method, f"{SCANS}/{scan['id']}{path}", headers=mine.headers)
        assert_error(response, 404, "NOT_FOUND")
    listed = (await client.get(SCANS, headers=mine.headers)).json()
    assert listed["data"] == [] and listed["meta"]["total"] == 0
    await wait_for(client, theirs.headers, scan["id"], {"completed", "failed"})
    viewer = await factory.user("viewer", tenant_id=theirs.tenant_id)
    assert (await client.get(f"{SCANS}/{scan['id']}/result", headers=viewer.headers)).status_code == 200
    assert_error(await client.post(f"{SCANS}/start", headers=viewer.headers, json=SLOW), 403, "FORBIDDEN")


async def test_scans_wait_for_a_free_worker_and_can_be_stopped_while_queued(
    server_factory: object, factory: Factory
) -> None:
    server = await server_factory(scan_workers=1, scan_max_concurrent=5)  # type: ignore[operator]
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        first = await start(http, admin.headers, **SLOW)
        assert (await wait_for(http, admin.headers, first["id"], {"running", "failed"}))["status"] == "running"
        second = await start(http, admin.headers, **SLOW)
        await asyncio.sleep(1.5)  # more than the runner's poll: it is waiting for the one worker
        waiting = (await http.get(f"{SCANS}/{second['id']}", headers=admin.headers)).json()
        assert waiting["status"] == "queued" and waiting["started_at"] is None
        stopped = (await http.post(f"{SCANS}/{second['id']}/stop", headers=admin.headers)).json()
        assert stopped["status"] == "cancelled"
        assert (await http.post(f"{SCANS}/{first['id']}/stop", headers=admin.headers)).status_code == 200
        await asyncio.sleep(1.5)  # the freed worker must not pick up the stopped scan
        never = (await http.get(f"{SCANS}/{second['id']}", headers=admin.headers)).json()
        assert never["status"] == "cancelled" and never["started_at"] is None
        listed = (await http.get(SCANS, headers=admin.headers, params={"status": "cancelled"})).json()
        assert {s["id"] for s in listed["data"]} == {first["id"], second["id"]}


async def test_stops_cross_server_processes_and_a_killed_server_s_scan_is_failed_by_the_next(
    process_server: object, factory: Factory
) -> None:
    admin = await factory.user("admin")
    first_url = process_server()  # type: ignore[operator]
    other_url = process_server()  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=first_url, timeout=30) as http:
        scan = await start(http, admin.headers, **SLOW)
        doomed = await start(http, admin.headers, **SLOW)
        for item in (scan, doomed):
            assert (await wait_for(http, admin.headers, item["id"], {"running", "failed"}))["status"] == "running"
    async with transaction(factory.runtime.sessions, write=False) as session:
        row = await session.get(Scan, scan["id"])
        assert row is not None and row.runner_id is not None
        server_pid = int(row.runner_id.split(":")[1])
    for _ in range(100):
        if len(_scan_workers_of(server_pid)) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(_scan_workers_of(server_pid)) == 2

    # Stopped through another server process: the one running it kills its process.
    async with httpx.AsyncClient(base_url=other_url, timeout=30) as http:
        stopped = await http.post(f"{SCANS}/{doomed['id']}/stop", headers=admin.headers)
        assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    began = time.monotonic()
    while len(_scan_workers_of(server_pid)) != 1:
        assert time.monotonic() - began < 5, "the stopped scan's process kept running on the other server"
        await asyncio.sleep(0.1)

    # Killed: no shutdown hook runs, so the scan is left `running` in the database, and its process dies.
    workers = _scan_workers_of(server_pid)
    os.kill(server_pid, 9)
    for _ in range(100):
        if not _alive(server_pid) and not _alive(workers[0]):
            break
        await asyncio.sleep(0.05)
    assert not _alive(workers[0]), "the scan's process outlived its server"
    next_url = process_server()  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=next_url, timeout=30) as http:
        after = (await http.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).json()
        assert after["status"] == "failed" and after["error"] == "server restarted", after
        doomed_after = (await http.get(f"{SCANS}/{doomed['id']}", headers=admin.headers)).json()
        assert doomed_after["status"] == "cancelled"

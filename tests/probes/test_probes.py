"""Remote probes: registration (key shown once), a real `ronda probe` process leasing its site's scan,
running it on loopback and posting results that land in the inventory; a probe key is confined to its
own site and tenant, and to the probe API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.conftest import Factory, LiveServer
from tests.scans.helpers import SCANS, Listener, start, wait_for
from tests.support import assert_error

SITES = "/api/v1/sites"
PROBES = "/api/v1/probes"


async def _probe(client: httpx.AsyncClient, headers: dict[str, str], site_id: str, name: str) -> dict[str, Any]:
    made = await client.post(f"{SITES}/{site_id}/probes", headers=headers, json={"name": name})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _key(probe: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {probe['key']}"}


async def test_a_probe_process_runs_its_sites_scan_into_the_inventory(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    site = (await client.post(SITES, headers=admin.headers, json={"name": "Branch", "networks": ["127.0.0.0/8"]}
                              )).json()
    probe = await _probe(client, admin.headers, site["id"], "branch-pi")
    assert probe["key"].startswith("rk_probe_") and probe["key"].startswith(probe["key_prefix"])
    assert probe["site_id"] == site["id"] and probe["last_contact_at"] is None and probe["active"] is False
    listed = (await client.get(PROBES, headers=admin.headers)).json()
    assert [p["id"] for p in listed["data"]] == [probe["id"]] and "key" not in listed["data"][0]

    env = {**os.environ, "RONDA_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "ronda.cli", "probe", "--server", live.url, "--key",
                             probe["key"], "--wait", "2"], env=env)
    listener = await Listener.open()
    try:
        deadline = time.monotonic() + 20
        while True:  # the probe's first long-poll marks it active: its site's scans are left to it
            [seen] = (await client.get(PROBES, headers=admin.headers)).json()["data"]
            if seen["active"]:
                break
            assert time.monotonic() < deadline and proc.poll() is None, seen
            await asyncio.sleep(0.1)
        assert seen["last_contact_at"] is not None and seen["last_ip"] == "127.0.0.1"

        scan = await start(client, admin.headers, target="127.0.0.1", profile="custom", ports=[listener.port],
                           timeout_ms=300, enable_profiling=False, site_id=site["id"])
        done = await wait_for(client, admin.headers, scan["id"], {"completed", "failed"}, timeout=40)
        assert done["status"] == "completed", done
        assert done["hosts_found"] == 1 and done["ports_found"] == 1 and done["site_id"] == site["id"]
        result = (await client.get(f"{SCANS}/{scan['id']}/result", headers=admin.headers)).json()
        assert [p["port"] for p in result["devices"][0]["ports"]] == [listener.port]
        devices = (await client.get("/api/v1/devices", headers=admin.headers, params={"site_id": site["id"]})).json()
        assert devices["meta"]["total"] == 1 and devices["data"][0]["ip"] == "127.0.0.1"
        assert proc.poll() is None
    finally:
        proc.terminate()  # the server runs on this event loop: wait without blocking it
        assert await asyncio.to_thread(proc.wait, 15) == 0
        await listener.close()


async def test_a_probe_key_is_confined_to_its_site_its_tenant_and_the_probe_api(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    north = (await client.post(SITES, headers=admin.headers, json={"name": "North"})).json()
    south = (await client.post(SITES, headers=admin.headers, json={"name": "South"})).json()
    north_probe = await _probe(client, admin.headers, north["id"], "north")
    south_probe = await _probe(client, admin.headers, south["id"], "south")
    theirs = await factory.user("admin")
    their_site = (await client.post(SITES, headers=theirs.headers, json={"name": "Theirs"})).json()
    their_probe = await _probe(client, theirs.headers, their_site["id"], "theirs")

    # South's probe calls once, so it is active: South's scans wait for it.
    first = await client.post(f"{PROBES}/lease", headers=_key(south_probe), json={"wait": 0, "version": "t"})
    assert first.status_code == 200 and first.json()["scan"] is None and first.json()["site_id"] == south["id"]
    scan = await start(client, admin.headers, target="127.0.0.1", profile="custom", ports=[1], timeout_ms=100,
                       site_id=south["id"])
    for other in (north_probe, their_probe):  # another site's or tenant's probe neither sees nor touches it
        leased = await client.post(f"{PROBES}/lease", headers=_key(other), json={"wait": 0})
        assert leased.status_code == 200 and leased.json()["scan"] is None
        for path, body in (("progress", {}), ("fail", {"reason": "x"}),
                           ("result", {"started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z"})):
            response = await client.post(f"{PROBES}/scans/{scan['id']}/{path}", headers=_key(other), json=body)
            assert_error(response, 404, "NOT_FOUND")

    leased = (await client.post(f"{PROBES}/lease", headers=_key(south_probe), json={"wait": 5})).json()
    job = leased["scan"]
    assert job["scan_id"] == scan["id"] and job["options"]["targets"] == ["127.0.0.1"]
    assert (await client.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).json()["status"] == "running"
    state = (await client.post(f"{PROBES}/scans/{scan['id']}/progress", headers=_key(south_probe),
                               json={"progress_percent": 40, "hosts": [{"ip": "127.0.0.1"}]})).json()
    assert state == {"scan_id": scan["id"], "status": "running", "keep_running": True}
    outside = {"started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
               "hosts": [{"ip": "10.9.9.9", "ports": [{"port": 22}]}]}
    response = await client.post(f"{PROBES}/scans/{scan['id']}/result", headers=_key(south_probe), json=outside)
    assert_error(response, 400, "BAD_REQUEST")  # a probe reports only on what it was asked to scan
    failed = await client.post(f"{PROBES}/scans/{scan['id']}/fail", headers=_key(south_probe),
                               json={"reason": "no route to the branch network"})
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    after = (await client.get(f"{SCANS}/{scan['id']}", headers=admin.headers)).json()
    assert after["status"] == "failed" and after["error"] == "probe south: no route to the branch network"
    assert_error(await client.post(f"{PROBES}/scans/{scan['id']}/fail", headers=_key(south_probe),
                                   json={"reason": "again"}), 409, "CONFLICT")

    # The key opens the probe API only; a user's token does not open the probe API.
    assert_error(await client.get("/api/v1/devices", headers=_key(south_probe)), 401, "UNAUTHORIZED")
    assert_error(await client.post(f"{PROBES}/lease", headers=admin.headers, json={"wait": 0}), 403, "FORBIDDEN")
    # Revoked: refused at once; other tenants cannot revoke it.
    assert_error(await client.delete(f"{PROBES}/{south_probe['id']}", headers=theirs.headers), 404, "NOT_FOUND")
    revoked = await client.delete(f"{PROBES}/{south_probe['id']}", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_error(await client.post(f"{PROBES}/lease", headers=_key(south_probe), json={"wait": 0}),
                 401, "UNAUTHORIZED")
    listed = (await client.get(PROBES, headers=admin.headers, params={"site_id": south["id"]})).json()["data"]
    assert [(p["id"], p["active"]) for p in listed] == [(south_probe["id"], False)]
    # A probe process with a revoked key gives up at once, saying why (exit status 2).
    ran = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "ronda.cli", "probe", "--server", live.url, "--key", south_probe["key"], "--wait", "0",
    ], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 2 and "refuses this probe's key" in ran.stderr, ran

"""The scans API end to end on real loopback listeners: start, progress, result, inventory, diff, audit."""

from __future__ import annotations

import re
import secrets

import httpx

from ronda.core.events import Event
from tests.conftest import Factory, LiveServer
from tests.scans.helpers import SCANS, Listener, audit_records, closed_port, start, wait_for

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_scan_result_inventory_and_diff(client: httpx.AsyncClient, factory: Factory, live: LiveServer) -> None:
    admin = await factory.user("admin")
    heard: list[Event] = []
    unsubscribe = live.app.state.events.subscribe(
        lambda event: heard.append(event) if event.tenant_id == admin.tenant_id else None)
    made = await client.post("/api/v1/sites", headers=admin.headers, json={"name": f"Lab {secrets.token_hex(4)}"})
    assert made.status_code == 201, made.text
    site = made.json()["id"]
    listeners = [await Listener.open() for _ in range(3)]
    shut = [closed_port(), closed_port()]
    extra: Listener | None = None
    try:
        ports = sorted([*(item.port for item in listeners), *shut])
        first = await start(client, admin.headers, target="127.0.0.1", profile="custom", ports=ports,
                            timeout_ms=300, site_id=site, enable_profiling=False)
        assert first["id"].startswith("scan_") and first["status"] == "queued"
        assert first["target"] == "127.0.0.1" and first["profile"] == "custom" and first["site_id"] == site
        assert first["hosts_total"] == 1 and TIMESTAMP.match(first["created_at"])

        done = await wait_for(client, admin.headers, first["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        assert done["progress_percent"] == 100.0 and done["hosts_found"] == 1 and done["ports_found"] == 3
        assert TIMESTAMP.match(done["started_at"]) and TIMESTAMP.match(done["completed_at"])
        assert done["error"] is None and done["duration_seconds"] >= 0

        result = (await client.get(f"{SCANS}/{first['id']}/result", headers=admin.headers)).json()
        assert result["status"] == "completed" and result["devices_found"] == 1
        [host] = result["devices"]
        assert host["ip"] == "127.0.0.1"
        assert {p["port"] for p in host["ports"]} == {item.port for item in listeners}
        assert all(p["state"] == "open" and p["protocol"] == "tcp" for p in host["ports"])
        for name in ("mac", "hostname", "vendor", "os_guess", "device_type"):
            assert name in host
        for name in ("service", "version", "banner", "cpe"):
            assert name in host["ports"][0]
        assert result["open_ports_total"] == 3
        assert result["diff"]["previous_scan_id"] is None and result["diff"]["new_hosts"] == ["127.0.0.1"]
        assert sorted(p["port"] for p in result["diff"]["new_ports"]) == sorted(item.port for item in listeners)
        assert result["diff"]["closed_ports"] == []

        # What the bus heard (the WebSocket streams relay it), in order, for this tenant.
        ours = [(e.type, e.data) for e in heard if e.data.get("scan_id") in (None, first["id"])]
        types = [t for t, _ in ours]
        for name in ("scan.queued", "scan.started", "scan.host_found", "scan.port_found", "scan.progress",
                     "device.discovered", "device.port_opened", "scan.completed"):
            assert name in types, (name, types)
        assert types.index("scan.started") < types.index("scan.host_found") < types.index("scan.completed")
        found = {d["port"] for t, d in ours if t == "scan.port_found"}
        assert found == {item.port for item in listeners}
        [(_, completed_event)] = [(t, d) for t, d in ours if t == "scan.completed"]
        assert completed_event["hosts_found"] == 1 and completed_event["ports_found"] == 3
        assert len(completed_event["diff"]["new_ports"]) == 3

        # The inventory has the host, learned by a scan, online, with its open ports.
        devices = (await client.get("/api/v1/devices", headers=admin.headers, params={"site_id": site})).json()
        [device] = devices["data"]
        assert device["id"] == host["device_id"] and device["ip"] == "127.0.0.1"
        assert "scan" in device["sources"] and device["is_online"] is True
        assert device["open_ports"] == sorted(item.port for item in listeners)
        port_rows = (await client.get(f"/api/v1/devices/{device['id']}/ports", headers=admin.headers)).json()
        assert {(p["port"], p["source"]) for p in port_rows["data"]} == {(item.port, "scan") for item in listeners}

        # One listener goes away, another appears: the next scan of the same target says so.
        gone = listeners.pop(0)
        await gone.close()
        extra = await Listener.open()
        second = await start(client, admin.headers, target="127.0.0.1", profile="custom", timeout_ms=300,
                             ports=[*ports, extra.port], site_id=site, enable_profiling=False)
        done = await wait_for(client, admin.headers, second["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        result = (await client.get(f"{SCANS}/{second['id']}/result", headers=admin.headers)).json()
        [host] = result["devices"]
        assert {p["port"] for p in host["ports"]} == {item.port for item in listeners} | {extra.port}
        assert result["diff"]["previous_scan_id"] == first["id"]
        assert result["diff"]["new_hosts"] == [] and result["diff"]["missing_hosts"] == []
        assert [(p["ip"], p["port"]) for p in result["diff"]["new_ports"]] == [("127.0.0.1", extra.port)]
        assert [(p["ip"], p["port"]) for p in result["diff"]["closed_ports"]] == [("127.0.0.1", gone.port)]

        # The same device, its ports following the scan.
        device = (await client.get(f"/api/v1/devices/{device['id']}", headers=admin.headers)).json()
        assert device["open_ports"] == sorted([*(item.port for item in listeners), extra.port])
        devices = (await client.get("/api/v1/devices", headers=admin.headers, params={"site_id": site})).json()
        assert devices["meta"]["total"] == 1

        # Listed, filtered, both pagination styles.
        listed = (await client.get(SCANS, headers=admin.headers, params={"status": "completed"})).json()
        assert [s["id"] for s in listed["data"]] == [second["id"], first["id"]]
        paged = (await client.get(SCANS, headers=admin.headers, params={"page": 2, "per_page": 1})).json()
        assert [s["id"] for s in paged["data"]] == [first["id"]] and paged["meta"]["total"] == 2
        skipped = (await client.get(SCANS, headers=admin.headers, params={"skip": 0, "limit": 1})).json()
        assert [s["id"] for s in skipped["data"]] == [second["id"]]
        none = (await client.get(SCANS, headers=admin.headers, params={"status": "running"})).json()
        assert none["data"] == [] and none["meta"]["total"] == 0
        searched = (await client.get(SCANS, headers=admin.headers, params={"search": "127.0.0.1"})).json()
        assert searched["meta"]["total"] == 2
        missed = (await client.get(SCANS, headers=admin.headers, params={"search": "10.9.9.9"})).json()
        assert missed["meta"]["total"] == 0
        listing = await client.get(SCANS, headers={**admin.headers, "Accept": "text/csv"})
        assert listing.headers["content-type"].startswith("text/csv") and len(listing.text.splitlines()) == 3
        csv_text = (await client.get(f"{SCANS}/{second['id']}/result", headers=admin.headers,
                                     params={"format": "csv"})).text
        assert csv_text.splitlines()[0].startswith("ip,") and "127.0.0.1" in csv_text

        # Audited: who asked, and the system's record of how it ended.
        [started] = await audit_records(factory, admin.tenant_id, "scan.started", first["id"])
        assert started.actor_id == admin.id and started.details["target"] == "127.0.0.1"
        [completed] = await audit_records(factory, admin.tenant_id, "scan.completed", first["id"])
        assert completed.actor_type == "system" and completed.details["requested_by"] == admin.id
        assert completed.details["devices_created"] == [device["id"]]
    finally:
        unsubscribe()
        for item in listeners:
            await item.close()
        if extra is not None:
            await extra.close()

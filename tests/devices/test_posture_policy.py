"""Posture over HTTP: evaluation history, tenant policy changes, staleness, and the compliance event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from ronda.core import events
from ronda.core.errors import AppError
from ronda.core.events import Event
from ronda.core.uow import SessionDep, UnitOfWorkRoute
from ronda.devices.models import Device, DeviceEvaluation
from tests.agents.helpers import REPORT, report_body, set_columns
from tests.conftest import Factory, LiveServer, make_settings, start_server
from tests.devices.inventory_helpers import DEVICES, ago, audit_events, count_rows, parse_csv

TENANT = "/api/v1/tenants/current"


async def _report(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(REPORT, headers=headers, json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _security(**results: str) -> dict[str, str]:
    base = {"disk_encryption": "pass", "firewall_enabled": "pass", "screen_lock_enabled": "pass",
            "os_up_to_date": "pass", "antivirus_enabled": "pass"}
    return {**base, **results}


async def test_history_is_kept_only_when_the_result_changes(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    device = await _report(client, admin.headers, report_body("HIST-1"))
    assert device["compliance"]["status"] == "compliant"
    await _report(client, admin.headers, report_body("HIST-1"))
    assert await count_rows(factory, DeviceEvaluation, device_id=device["id"]) == 1
    failing = await _report(client, admin.headers, report_body("HIST-1", security=_security(firewall_enabled="fail")))
    assert failing["compliance"] == {**failing["compliance"], "status": "non_compliant", "score": 80.0}
    assert await count_rows(factory, DeviceEvaluation, device_id=device["id"]) == 2
    changes = await audit_events(factory, admin.tenant_id, "device.compliance_changed", device["id"])
    assert [(c.details["old"], c.details["new"]) for c in changes] == [("unknown", "compliant"),
                                                                       ("compliant", "non_compliant")]
    assert changes[1].details["checks"]["firewall_enabled"] == "fail"
    # A changed score with the same status is history, but not a status change.
    worse = _security(firewall_enabled="fail", antivirus_enabled="fail")
    await _report(client, admin.headers, report_body("HIST-1", security=worse))
    assert await count_rows(factory, DeviceEvaluation, device_id=device["id"]) == 3
    assert len(await audit_events(factory, admin.tenant_id, "device.compliance_changed", device["id"])) == 2


async def test_a_policy_change_re_evaluates_the_tenants_devices(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    other_tenant = await factory.user("admin")
    no_av = await _report(client, admin.headers, report_body("POL-1", security=_security(antivirus_enabled="fail")))
    mac = await _report(client, admin.headers, report_body("POL-2", os_type="macos", os_version="13.6.1"))
    theirs = await _report(client, other_tenant.headers,
                           report_body("POL-3", security=_security(antivirus_enabled="fail")))
    manual = (await client.post(DEVICES, headers=admin.headers, json={"device_name": "printer"})).json()
    assert no_av["compliance"]["status"] == "non_compliant" and mac["compliance"]["status"] == "compliant"

    relaxed = await client.patch(TENANT, headers=admin.headers, json={"compliance_policy": {
        "required_checks": ["disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date"]}})
    assert relaxed.status_code == 200, relaxed.text
    after = (await client.get(f"{DEVICES}/{no_av['id']}", headers=admin.headers)).json()["compliance"]
    assert after["status"] == "compliant" and after["checks"]["antivirus_enabled"] == "fail"
    # Another tenant's devices and never-evaluated devices are left alone.
    assert (await client.get(f"{DEVICES}/{theirs['id']}", headers=other_tenant.headers)).json()[
        "compliance"]["status"] == "non_compliant"
    assert (await client.get(f"{DEVICES}/{manual['id']}", headers=admin.headers)).json()[
        "compliance"]["status"] == "unknown"
    changed = await audit_events(factory, admin.tenant_id, "device.compliance_changed", no_av["id"])
    assert (changed[-1].details["old"], changed[-1].details["new"]) == ("non_compliant", "compliant")
    assert changed[-1].actor_id == admin.id

    strict = await client.patch(TENANT, headers=admin.headers,
                                json={"compliance_policy": {"min_os_versions": {"macos": "14.2"}}})
    assert strict.status_code == 200, strict.text
    macbook = (await client.get(f"{DEVICES}/{mac['id']}", headers=admin.headers)).json()["compliance"]
    assert macbook["status"] == "non_compliant" and macbook["checks"]["os_version_minimum"] == "fail"
    assert macbook["score"] == 80.0
    upgraded = await _report(client, admin.headers, report_body("POL-2", os_type="macos", os_version="14.2.1"))
    assert upgraded["compliance"]["status"] == "compliant"
    assert upgraded["compliance"]["checks"]["os_version_minimum"] == "pass"
    non_compliant = (await client.get(f"{DEVICES}?compliance_status=non_compliant", headers=admin.headers)).json()
    assert non_compliant["data"] == []


async def test_a_device_without_recent_reports_reads_unknown(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    fresh = await _report(client, admin.headers, report_body("STALE-1"))
    old = await _report(client, admin.headers, report_body("STALE-2"))
    await set_columns(factory, Device, old["id"], last_report_at=ago(days=8))

    got = (await client.get(f"{DEVICES}/{old['id']}", headers=admin.headers)).json()["compliance"]
    assert got["status"] == "unknown" and got["checks"]["firewall_enabled"] == "pass"  # last known checks stay
    unknown = (await client.get(f"{DEVICES}?compliance_status=unknown", headers=admin.headers)).json()["data"]
    assert [d["id"] for d in unknown] == [old["id"]]
    compliant = (await client.get(f"{DEVICES}?compliance_status=compliant", headers=admin.headers)).json()["data"]
    assert [d["id"] for d in compliant] == [fresh["id"]]
    rows = {r["id"]: r for r in parse_csv((await client.get(f"{DEVICES}?format=csv", headers=admin.headers)).text)}
    assert rows[old["id"]]["compliance_status"] == "unknown" and rows[fresh["id"]]["compliance_status"] == "compliant"

    # The policy decides what stale means; nothing is rewritten, so a longer window restores the result.
    await client.patch(TENANT, headers=admin.headers, json={"compliance_policy": {"stale_after_days": 30}})
    again = (await client.get(f"{DEVICES}/{old['id']}", headers=admin.headers)).json()["compliance"]
    assert again["status"] == "compliant"
    # A new report makes it current again.
    await client.patch(TENANT, headers=admin.headers, json={"compliance_policy": {"stale_after_days": 7}})
    assert (await _report(client, admin.headers, report_body("STALE-2")))["compliance"]["status"] == "compliant"


async def test_a_compliance_change_is_published_after_commit(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    seen: list[tuple[Event, str | None]] = []

    async def subscriber(event: Event) -> None:
        # Delivered after commit: a separate session already sees the new status.
        async with factory.runtime.sessions() as session:
            status = await session.scalar(select(Device.compliance_status)
                                          .where(Device.id == event.data["device_id"]))
        seen.append((event, status))

    unsubscribe = live.app.state.events.subscribe(subscriber)
    try:
        device = await _report(client, admin.headers, report_body("EVT-1"))
        await _report(client, admin.headers, report_body("EVT-1"))  # unchanged: no event
        await _report(client, admin.headers, report_body("EVT-1", security=_security(disk_encryption=False)))
    finally:
        unsubscribe()
    mine = [(e, s) for e, s in seen if e.tenant_id == admin.tenant_id]
    assert [(e.type, e.data["old_status"], e.data["new_status"], s) for e, s in mine] == [
        ("device.compliance_changed", "unknown", "compliant", "compliant"),
        ("device.compliance_changed", "compliant", "non_compliant", "non_compliant"),
    ]
    assert mine[1][0].data["device_id"] == device["id"] and mine[1][0].data["new_score"] == 80.0


async def test_queued_events_are_dropped_on_rollback(migrated: str, data_dir: Path) -> None:
    server = await start_server(make_settings(migrated, data_dir))
    delivered: list[Event] = []
    # Only this test's events: background work (CVE matching, sweepers) publishes on the same bus.
    server.app.state.events.subscribe(lambda event: delivered.append(event) if event.type == "test.happened" else None)

    async def ok(session: SessionDep) -> dict[str, str]:
        events.queue(session, "test.happened", "tenant_x", {"n": 1})
        return {"status": "ok"}

    async def fails(session: SessionDep) -> dict[str, str]:
        events.queue(session, "test.happened", "tenant_x", {"n": 2})
        raise AppError(409, "changed my mind")

    server.app.router.add_api_route("/uow/ok", ok, methods=["POST"], route_class_override=UnitOfWorkRoute)
    server.app.router.add_api_route("/uow/fails", fails, methods=["POST"], route_class_override=UnitOfWorkRoute)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.post("/uow/fails")).status_code == 409
            assert delivered == []
            assert (await http.post("/uow/ok")).status_code == 200
    finally:
        await server.stop()
    assert [(e.type, e.tenant_id, e.data) for e in delivered] == [("test.happened", "tenant_x", {"n": 1})]

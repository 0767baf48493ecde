"""The alerts API: acknowledge and resolve with who and when, 409s, filters, since, CSV, audit."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx

from ronda.alerts.models import Alert
from ronda.core.timeutil import iso, utcnow
from tests.agents.helpers import set_columns
from tests.alerts.helpers import ALERTS, alerts_of, fire, port_event, settle
from tests.conftest import Factory, LiveServer
from tests.devices.inventory_helpers import audit_events
from tests.streams.helpers import make_device
from tests.support import assert_error


async def _risky(client: httpx.AsyncClient, factory: Factory, live: LiveServer, admin_ports: tuple[int, ...]
                 ) -> tuple[object, list[dict[str, object]]]:
    admin = await factory.user("admin")
    device = await make_device(client, admin)
    for port in admin_ports:
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, port))
    await settle(live)
    return admin, await alerts_of(client, admin)


async def test_acknowledge_then_resolve_records_who_and_when(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    operator = await factory.user("operator", tenant_id=admin.tenant_id)
    device = await make_device(client, admin)
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 5900))
    await settle(live)
    [alert] = await alerts_of(client, admin)
    url = f"{ALERTS}/{alert['id']}"
    acked = await client.post(f"{url}/acknowledge", headers=operator.headers, json={"note": "looking"})
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == operator.email
    assert body["acknowledged_at"].endswith("Z")
    assert_error(await client.post(f"{url}/acknowledge", headers=operator.headers), 409, "CONFLICT")
    # A repeat while acknowledged counts on the same alert.
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 5900))
    await settle(live)
    again = (await client.get(url, headers=admin.headers)).json()
    assert again["status"] == "acknowledged" and again["occurrence_count"] == 2
    resolved = await client.post(f"{url}/resolve", headers=operator.headers, json={"resolution_note": "closed it"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json() | {"resolved_at": None} == again | {
        "status": "resolved", "resolved_by": operator.email, "resolution_note": "closed it", "resolved_at": None,
        "updated_at": resolved.json()["updated_at"]}
    assert_error(await client.post(f"{url}/acknowledge", headers=operator.headers), 409, "CONFLICT")
    assert_error(await client.post(f"{url}/resolve", headers=operator.headers, json={}), 409, "CONFLICT")
    assert [e.details.get("note") for e in await audit_events(factory, admin.tenant_id, "alert.acknowledged",
                                                              alert["id"])] == ["looking"]
    assert len(await audit_events(factory, admin.tenant_id, "alert.resolved", alert["id"])) == 1
    # Resolved: the same trigger opens a new alert.
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 5900))
    await settle(live)
    assert sorted(a["status"] for a in await alerts_of(client, admin)) == ["open", "resolved"]


async def test_permissions_and_bad_input(client: httpx.AsyncClient, factory: Factory, live: LiveServer) -> None:
    admin = await factory.user("admin")
    viewer = await factory.user("viewer", tenant_id=admin.tenant_id)
    user = await factory.user("user", tenant_id=admin.tenant_id)
    device = await make_device(client, admin)
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 21))
    await settle(live)
    [alert] = await alerts_of(client, viewer)
    assert alert["severity"] == "medium"
    assert_error(await client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=viewer.headers), 403)
    assert_error(await client.get(ALERTS, headers=user.headers), 403)
    assert_error(await client.get(ALERTS), 401)
    assert_error(await client.get(f"{ALERTS}/alert_nope", headers=admin.headers), 404, "NOT_FOUND")
    assert_error(await client.post(f"{ALERTS}/{alert['id']}/resolve", headers=admin.headers,
                                   json={"resolution_note": "x", "extra": 1}), 400)
    for query in ({"severity": "urgent"}, {"status": "closed"}, {"since": "yesterday"}, {"sort": "nope"},
                  {"per_page": 0}):
        assert_error(await client.get(ALERTS, headers=admin.headers, params=query), 400, "BAD_REQUEST")


async def test_filters_since_and_both_pagination_styles(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    device = await make_device(client, admin, site_id="site_a")
    for port in (23, 21, 445):
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, port))
    await settle(live)
    alerts = await alerts_of(client, admin)
    assert len(alerts) == 3
    old = next(a for a in alerts if a["metadata"]["port"] == 21)
    await set_columns(factory, Alert, old["id"], created_at=utcnow() - timedelta(days=3))
    assert {a["metadata"]["port"] for a in await alerts_of(client, admin, since="24h")} == {23, 445}
    assert len(await alerts_of(client, admin, since="7d")) == 3
    assert len(await alerts_of(client, admin, since=iso(utcnow() - timedelta(days=2)))) == 2
    assert len(await alerts_of(client, admin, since="2026-01-01")) >= 2
    assert {a["severity"] for a in await alerts_of(client, admin, severity="high")} == {"high"}
    assert len(await alerts_of(client, admin, severity="high,medium")) == 3
    assert len(await alerts_of(client, admin, status="open", source="scan", site_id="site_a")) == 3
    assert await alerts_of(client, admin, site_id="elsewhere") == []
    assert len(await alerts_of(client, admin, rule="risky_service", device_id=device["id"])) == 3
    page = (await client.get(ALERTS, headers=admin.headers, params={"page": 2, "per_page": 2})).json()
    assert len(page["data"]) == 1 and page["meta"] == {"total": 3, "page": 2, "per_page": 2, "skip": 2, "limit": 2}
    window = (await client.get(ALERTS, headers=admin.headers, params={"skip": 1, "limit": 1,
                                                                      "sort": "created_at"})).json()
    assert window["meta"]["total"] == 3 and len(window["data"]) == 1
    assert window["data"][0]["id"] != old["id"]  # the oldest comes first: skipped


async def test_csv_export_honours_the_filters(client: httpx.AsyncClient, factory: Factory, live: LiveServer) -> None:
    admin = await factory.user("admin")
    device = await make_device(client, admin)
    for port in (23, 3306):
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, port))
    await settle(live)
    response = await client.get(ALERTS, headers={**admin.headers, "Accept": "text/csv"},
                                params={"search": "MySQL"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "alerts.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["rule"], r["severity"], r["device_ip"]) for r in rows] == [("risky_service", "high", "10.9.0.5")]
    assert "MySQL" in rows[0]["title"]
    both = await client.get(ALERTS, headers=admin.headers, params={"format": "csv"})
    assert len(list(csv.DictReader(io.StringIO(both.text)))) == 2

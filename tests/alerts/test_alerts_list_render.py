"""GET /alerts renders its page from plain rows: each item reads exactly as the alert's own view."""

from __future__ import annotations

import httpx

from ronda.alerts.schemas import AlertRead
from ronda.core.pagination import Page
from tests.alerts.helpers import ALERTS, alerts_of, fire, port_event, settle
from tests.conftest import Factory, LiveServer
from tests.devices.inventory_helpers import count_statements
from tests.streams.helpers import make_device


async def test_list_items_read_as_the_detail_view(client: httpx.AsyncClient, factory: Factory,
                                                  live: LiveServer) -> None:
    admin = await factory.user("admin")
    device = await make_device(client, admin)
    for port in (21, 23, 445):
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, port, service="smb"))
    await settle(live)
    first, second, _ = await alerts_of(client, admin)
    # Acknowledged and resolved alerts fill the optional fields (who, when, note).
    await client.post(f"{ALERTS}/{first['id']}/acknowledge", headers=admin.headers, json={"note": "on it"})
    await client.post(f"{ALERTS}/{second['id']}/resolve", headers=admin.headers, json={"resolution_note": "done"})
    listed = await alerts_of(client, admin)
    assert len(listed) == 3
    assert {a["status"] for a in listed} == {"open", "acknowledged", "resolved"}
    for item in listed:
        detail = (await client.get(f"{ALERTS}/{item['id']}", headers=admin.headers)).json()
        assert item == detail
        assert list(item) == list(AlertRead.model_fields)  # the documented order
        assert item["created_at"].endswith("Z") and isinstance(item["metadata"], dict)
    page = (await client.get(ALERTS, headers=admin.headers, params={"per_page": 2})).json()
    Page[AlertRead].model_validate(page, by_alias=False, by_name=True)  # the documented model holds
    assert page["meta"] == {"total": 3, "page": 1, "per_page": 2, "skip": 0, "limit": 2}
    # The total counts what the filters keep, not the tenant's every alert.
    active = (await client.get(ALERTS, headers=admin.headers, params={"status": "open,acknowledged",
                                                                      "per_page": 1})).json()
    assert active["meta"]["total"] == 2 and len(active["data"]) == 1


async def test_list_statements_and_a_page_past_the_end(client: httpx.AsyncClient, factory: Factory,
                                                       live: LiveServer) -> None:
    """Query-count baseline: the page with its total (authentication aside); past the last page, the
    empty page and a count."""
    admin = await factory.user("admin")
    device = await make_device(client, admin)
    for port in (21, 23):
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, port))
    await settle(live)
    with count_statements(factory) as statements:
        response = await client.get(ALERTS, headers=admin.headers, params={"status": "open", "per_page": 50})
    assert response.status_code == 200 and len(response.json()["data"]) == 2
    listed = [sql for sql in statements if "FROM alerts" in sql]
    assert len(listed) == 1 and "count(" in listed[0].lower(), statements
    with count_statements(factory) as statements:
        response = await client.get(ALERTS, headers=admin.headers, params={"page": 5, "per_page": 50})
    assert response.json() == {"data": [], "meta": {"total": 2, "page": 5, "per_page": 50, "skip": 200,
                                                    "limit": 50}}
    assert len([sql for sql in statements if "FROM alerts" in sql]) == 2, statements


async def test_list_stays_in_the_tenant(client: httpx.AsyncClient, factory: Factory, live: LiveServer) -> None:
    admin = await factory.user("admin")
    other = await factory.user("admin")
    device = await make_device(client, admin)
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 23))
    await settle(live)
    assert len(await alerts_of(client, admin)) == 1
    assert await alerts_of(client, other) == []
    body = (await client.get(ALERTS, headers=other.headers)).json()
    assert body["meta"]["total"] == 0 and body["data"] == []

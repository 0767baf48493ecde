"""Sites: CRUD, validation, uniqueness, tenant isolation, audit, refusal to delete a site in use,
and POST /scans/start refusing a site_id that is not one of the tenant's sites."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from tests.conftest import Factory
from tests.support import assert_error

SITES = "/api/v1/sites"


async def _audit(factory: Factory, tenant_id: str, site_id: str) -> list[str]:
    async with transaction(factory.runtime.sessions, write=False) as session:
        rows = await session.scalars(select(AuditLog.event_type).where(
            AuditLog.tenant_id == tenant_id, AuditLog.resource_id == site_id).order_by(AuditLog.created_at))
        return list(rows.all())


async def test_site_crud_validation_and_audit(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    made = await client.post(SITES, headers=admin.headers, json={
        "name": " Berlin office ", "description": "HQ", "networks": ["10.1.2.3/16", "192.168.10.0/24", "10.1.0.0/16"],
        "location": "Berlin, DE"})
    assert made.status_code == 201, made.text
    site = made.json()
    assert site["id"].startswith("site_") and site["name"] == "Berlin office"
    assert site["networks"] == ["10.1.0.0/16", "192.168.10.0/24"]  # normalised, deduplicated
    assert site["tenant_id"] == admin.tenant_id and site["created_at"].endswith("Z")

    assert (await client.get(f"{SITES}/{site['id']}", headers=admin.headers)).json() == site
    listed = (await client.get(SITES, headers=admin.headers, params={"search": "berlin"})).json()
    assert [s["id"] for s in listed["data"]] == [site["id"]] and listed["meta"]["total"] == 1

    # Bad input: 400 naming the field, nothing written.
    for body, field in (({"name": "x", "networks": ["10.0.0.0/33"]}, "networks"), ({"name": ""}, "name"),
                        ({"name": "x", "colour": "red"}, "colour"), ({"networks": []}, "name")):
        error = assert_error(await client.post(SITES, headers=admin.headers, json=body), 400, "BAD_REQUEST")
        assert any(field in d["field"] for d in error["error"]["details"]), error
    assert_error(await client.post(SITES, headers=admin.headers, json={"name": "berlin OFFICE"}), 409, "CONFLICT")

    patched = await client.patch(f"{SITES}/{site['id']}", headers=admin.headers,
                                 json={"networks": ["172.16.0.0/12"], "location": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["networks"] == ["172.16.0.0/12"] and patched.json()["location"] is None
    assert patched.json()["name"] == "Berlin office"
    other = (await client.post(SITES, headers=admin.headers, json={"name": "Lisbon"})).json()
    assert_error(await client.patch(f"{SITES}/{other['id']}", headers=admin.headers, json={"name": "Berlin office"}),
                 409, "CONFLICT")

    deleted = await client.delete(f"{SITES}/{other['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert_error(await client.get(f"{SITES}/{other['id']}", headers=admin.headers), 404, "NOT_FOUND")
    assert await _audit(factory, admin.tenant_id, site["id"]) == ["site.created", "site.updated"]
    assert await _audit(factory, admin.tenant_id, other["id"]) == ["site.created", "site.deleted"]


async def test_a_site_in_use_cannot_be_deleted_and_scans_need_a_real_site(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    site = (await client.post(SITES, headers=admin.headers, json={"name": "Lab"})).json()
    device = await client.post("/api/v1/devices", headers=admin.headers,
                               json={"device_name": "switch", "serial_number": "SW-1", "site_id": site["id"]})
    assert device.status_code == 201, device.text
    probe = await client.post(f"{SITES}/{site['id']}/probes", headers=admin.headers, json={"name": "lab-pi"})
    assert probe.status_code == 201, probe.text
    error = assert_error(await client.delete(f"{SITES}/{site['id']}", headers=admin.headers), 409, "CONFLICT")
    assert {d["field"] for d in error["error"]["details"]} == {"devices", "probes"}
    assert (await client.get(f"{SITES}/{site['id']}", headers=admin.headers)).status_code == 200

    # A scan may name only a site of the caller's tenant.
    theirs = await factory.user("admin")
    their_site = (await client.post(SITES, headers=theirs.headers, json={"name": "Theirs"})).json()
    for site_id in ("site_nope", their_site["id"]):
        response = await client.post("/api/v1/scans/start", headers=admin.headers, json={
            "target": "127.0.0.1", "profile": "custom", "ports": [1], "site_id": site_id})
        error = assert_error(response, 400, "BAD_REQUEST")
        assert error["error"]["details"][0]["field"] == "site_id"
    assert (await client.get("/api/v1/scans", headers=admin.headers)).json()["meta"]["total"] == 0


async def test_sites_are_tenant_scoped_and_permissioned(client: httpx.AsyncClient, factory: Factory) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    their_site = (await client.post(SITES, headers=theirs.headers, json={"name": "Theirs"})).json()
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(method, f"{SITES}/{their_site['id']}", headers=mine.headers,
                                        json={"name": "mine now"} if method == "PATCH" else None)
        assert_error(response, 404, "NOT_FOUND")
    assert_error(await client.post(f"{SITES}/{their_site['id']}/probes", headers=mine.headers, json={}),
                 404, "NOT_FOUND")
    assert (await client.get(SITES, headers=mine.headers)).json()["meta"]["total"] == 0
    still = (await client.get(f"{SITES}/{their_site['id']}", headers=theirs.headers)).json()
    assert still["name"] == "Theirs"
    # Same name in another tenant is fine.
    assert (await client.post(SITES, headers=mine.headers, json={"name": "Theirs"})).status_code == 201

    viewer = await factory.user("viewer", tenant_id=mine.tenant_id)
    assert (await client.get(SITES, headers=viewer.headers)).json()["meta"]["total"] == 1
    assert_error(await client.post(SITES, headers=viewer.headers, json={"name": "v"}), 403, "FORBIDDEN")

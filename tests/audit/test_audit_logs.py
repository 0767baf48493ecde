"""Reading the audit log: who may, what is recorded, filters, sorting, paging and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Factory
from tests.support import assert_error

CSV_COLUMNS = ["id", "created_at", "event_name", "event_type", "category", "actor_id", "actor_email", "actor_type",
               "ip_address", "user_agent", "resource_type", "resource_id", "metadata"]
READ_FIELDS = {"id", "event_name", "event_type", "category", "actor_id", "actor_email", "actor_type", "ip_address",
               "user_agent", "resource_type", "resource_id", "metadata", "created_at"}


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def logs(client: httpx.AsyncClient, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit-logs", headers=account.headers, params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def activity(client: httpx.AsyncClient, factory: Factory) -> tuple[Account, Account, dict[str, Any]]:
    """A tenant with an admin and an analyst, a failed login, and a key created and revoked."""
    tenant = await factory.tenant()
    admin = await factory.user("admin", tenant_id=tenant)
    analyst = await factory.user("analyst", tenant_id=tenant)
    failed = await client.post("/api/v1/auth/login", json={"username": analyst.username, "password": "not it at all"})
    assert failed.status_code == 401
    key = (await client.post("/api/v1/api-keys", headers=admin.headers,
                             json={"name": "export", "permissions": ["devices_read"]})).json()
    assert (await client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin.headers)).status_code == 200
    return admin, analyst, key


async def test_roles_that_may_read_the_audit_log(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    for role in ("viewer", "operator", "user"):
        caller = await factory.user(role, tenant_id=tenant)
        for path in ("/api/v1/audit-logs", "/api/v1/audit-logs/verify", "/api/v1/audit-logs/evt_anything"):
            assert_error(await client.get(path, headers=caller.headers), 403, "FORBIDDEN")
    for role in ("analyst", "admin", "super_admin"):
        caller = await factory.user(role, tenant_id=tenant)
        assert (await client.get("/api/v1/audit-logs", headers=caller.headers)).status_code == 200
        assert (await client.get("/api/v1/audit-logs/verify", headers=caller.headers)).status_code == 200
    for path in ("/api/v1/audit-logs", "/api/v1/audit-logs/verify", "/api/v1/audit-logs/evt_x", "/v1/audit-logs"):
        assert_error(await client.get(path), 401, "UNAUTHORIZED")


async def test_logins_and_key_changes_are_recorded_with_actor_and_address(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin, analyst, key = await activity(client, factory)
    records = await logs(client, admin)
    assert set(records[0]) >= READ_FIELDS
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(record["event_type"], []).append(record)

    logins = {r["actor_id"]: r for r in by_type["auth.login.succeeded"]}
    assert set(logins) == {admin.id, analyst.id}
    success = logins[admin.id]
    assert success["event_name"] == "User Login Success" and success["category"] == "authentication"
    assert success["actor_email"] == admin.email and success["actor_type"] == "user"
    assert success["ip_address"] == "127.0.0.1" and success["user_agent"].startswith("python-httpx")

    [failure] = by_type["auth.login.failed"]
    assert failure["actor_id"] == analyst.id and failure["ip_address"] == "127.0.0.1"
    assert failure["resource_type"] == "user" and failure["resource_id"] == analyst.id
    assert "not it at all" not in json.dumps(records)

    [created] = by_type["api_key.created"]
    assert created["actor_id"] == admin.id and created["actor_email"] == admin.email
    assert created["ip_address"] == "127.0.0.1" and created["actor_type"] == "user"
    assert created["resource_type"] == "api_key" and created["resource_id"] == key["id"]
    assert created["metadata"]["name"] == "export" and created["metadata"]["permissions"] == ["devices_read"]
    assert created["metadata"]["key_prefix"] == key["key_prefix"]
    [revoked] = by_type["api_key.revoked"]
    assert revoked["actor_id"] == admin.id and revoked["resource_id"] == key["id"]
    assert revoked["event_name"] == "API Key Revoked" and revoked["ip_address"] == "127.0.0.1"
    # The key itself is never written to the log.
    page = await client.get("/api/v1/audit-logs", headers=admin.headers)
    assert key["key"] not in page.text and key["key"][len(key["key_prefix"]):] not in page.text

    one = await client.get(f"/api/v1/audit-logs/{created['id']}", headers=admin.headers)
    assert one.status_code == 200 and one.json() == created


async def test_another_tenants_records_never_appear(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _, _ = await activity(client, factory)
    other_admin, _, other_key = await activity(client, factory)
    mine = await logs(client, admin, limit=100)
    theirs = await logs(client, other_admin, limit=100)
    assert {r["tenant_id"] for r in mine} == {admin.tenant_id}
    assert not {r["id"] for r in mine} & {r["id"] for r in theirs}
    assert await logs(client, admin, resource_id=other_key["id"]) == []
    assert await logs(client, admin, actor_id=other_admin.id) == []
    for record in theirs[:3]:
        assert_error(await client.get(f"/api/v1/audit-logs/{record['id']}", headers=admin.headers), 404, "NOT_FOUND")
    assert_error(await client.get("/api/v1/audit-logs/evt_missing", headers=admin.headers), 404, "NOT_FOUND")
    csv_text = (await client.get("/api/v1/audit-logs", headers=admin.headers, params={"format": "csv"})).text
    assert other_admin.id not in csv_text and other_key["id"] not in csv_text
    verify = (await client.get("/api/v1/audit-logs/verify", headers=admin.headers)).json()
    assert verify["chain"] == admin.tenant_id


async def test_filters(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, analyst, key = await activity(client, factory)

    def types(records: list[dict[str, Any]]) -> list[str]:
        return sorted(r["event_type"] for r in records)

    # The seed's event_name takes the human name or the dotted type.
    assert types(await logs(client, admin, event_name="User Login Failed")) == ["auth.login.failed"]
    assert types(await logs(client, admin, event_name="user login failed")) == ["auth.login.failed"]
    assert types(await logs(client, admin, event_name="auth.login.failed")) == ["auth.login.failed"]
    assert types(await logs(client, admin, event_type="api_key.revoked")) == ["api_key.revoked"]
    assert types(await logs(client, admin, category="authentication")) == [
        "auth.login.failed", "auth.login.succeeded", "auth.login.succeeded"]
    assert types(await logs(client, admin, resource_type="api_key")) == ["api_key.created", "api_key.revoked"]
    assert types(await logs(client, admin, resource_id=key["id"])) == ["api_key.created", "api_key.revoked"]
    assert types(await logs(client, admin, actor_id=analyst.id)) == ["auth.login.failed", "auth.login.succeeded"]
    assert types(await logs(client, admin, actor_id=admin.id, event_type="api_key.created")) == ["api_key.created"]
    assert len(await logs(client, admin, actor_type="user")) == 5
    assert await logs(client, admin, actor_type="agent") == []
    assert len(await logs(client, admin, ip_address="127.0.0.1")) == 5
    assert await logs(client, admin, ip_address="10.9.9.9") == []
    assert await logs(client, admin, event_type="no.such.event") == []
    # search looks at the event name, the actor's email and the resource id.
    assert types(await logs(client, admin, search="key revoked")) == ["api_key.revoked"]
    assert types(await logs(client, admin, search=analyst.email.upper())) == [
        "auth.login.failed", "auth.login.succeeded"]
    assert types(await logs(client, admin, search=key["id"][4:])) == ["api_key.created", "api_key.revoked"]
    assert_error(await client.get("/api/v1/audit-logs", headers=admin.headers, params={"actor_type": "robot"}), 400)


async def test_date_ranges(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _, _ = await activity(client, factory)
    everything = await logs(client, admin)
    assert len(everything) == 5
    now = datetime.now(UTC)
    newest = max((r["created_at"] for r in everything), key=parse)
    oldest = min((r["created_at"] for r in everything), key=parse)
    today = parse(newest).date()
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    if parse(oldest).date() != today:
        pytest.skip("the records straddle midnight UTC")

    # A bare end date includes that whole day.
    assert len(await logs(client, admin, start_date=str(today), end_date=str(today))) == 5
    assert len(await logs(client, admin, end_date=str(today))) == 5
    assert await logs(client, admin, end_date=str(yesterday)) == []
    assert await logs(client, admin, start_date=str(tomorrow)) == []
    # ISO date-times, with Z, with an offset, or naive (UTC).
    assert len(await logs(client, admin, start_date=oldest, end_date=newest)) == 5
    assert len(await logs(client, admin, start_date=newest)) == 1
    assert len(await logs(client, admin, end_date=oldest)) == 1
    later = (now + timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert await logs(client, admin, start_date=later) == []
    assert await logs(client, admin, start_date=later + "Z") == []
    shifted = (now + timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    assert await logs(client, admin, start_date=shifted) == []
    earlier = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    assert len(await logs(client, admin, start_date=earlier)) == 5

    for params in ({"start_date": str(today), "end_date": str(yesterday)},
                   {"start_date": newest, "end_date": oldest}, {"start_date": later, "end_date": earlier},
                   {"start_date": "yesterday"}, {"end_date": "2025-13-01"}, {"end_date": "01/02/2025"}):
        body = assert_error(await client.get("/api/v1/audit-logs", headers=admin.headers, params=params), 400)
        assert body["error"]["details"][0]["field"] in ("start_date", "end_date")


async def test_sorting_and_paging(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _, _ = await activity(client, factory)
    newest_first = await logs(client, admin)
    seqs = [r["seq"] for r in newest_first]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 5
    oldest_first = await logs(client, admin, sort="created_at")
    assert [r["id"] for r in oldest_first] == [r["id"] for r in reversed(newest_first)]
    assert [r["id"] for r in await logs(client, admin, sort="-created_at")] == [r["id"] for r in newest_first]
    by_type = [r["event_type"] for r in await logs(client, admin, sort="event_type")]
    assert by_type == sorted(by_type)
    by_type_desc = [r["event_type"] for r in await logs(client, admin, sort="-event_type")]
    assert by_type_desc == sorted(by_type_desc, reverse=True)
    by_actor = [r["actor_id"] for r in await logs(client, admin, sort="actor_id")]
    assert by_actor == sorted(by_actor)
    assert_error(await client.get("/api/v1/audit-logs", headers=admin.headers, params={"sort": "hash"}), 400)

    page = await client.get("/api/v1/audit-logs", headers=admin.headers, params={"page": 2, "per_page": 2})
    assert [r["id"] for r in page.json()["data"]] == [r["id"] for r in newest_first[2:4]]
    assert page.json()["meta"] == {"total": 5, "page": 2, "per_page": 2, "skip": 2, "limit": 2}
    window = await client.get("/api/v1/audit-logs", headers=admin.headers, params={"skip": 4, "limit": 3})
    assert [r["id"] for r in window.json()["data"]] == [newest_first[4]["id"]]
    assert window.json()["meta"]["total"] == 5
    for params in ({"per_page": 1001}, {"limit": 0}, {"page": 0}, {"skip": -1}, {"page": 1, "limit": 5}):
        assert_error(await client.get("/api/v1/audit-logs", headers=admin.headers, params=params), 400)


@pytest.mark.parametrize("how", ["accept", "format"])
async def test_csv_export_honours_filters(client: httpx.AsyncClient, factory: Factory, how: str) -> None:
    admin, _, key = await activity(client, factory)
    headers = {**admin.headers, "Accept": "text/csv"} if how == "accept" else admin.headers
    params = {"resource_type": "api_key"} | ({"format": "csv"} if how == "format" else {})
    response = await client.get("/api/v1/audit-logs", headers=headers, params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="audit-logs.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == CSV_COLUMNS
    records = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [r["event_type"] for r in records] == ["api_key.revoked", "api_key.created"]
    created = records[1]
    assert created["actor_id"] == admin.id and created["actor_email"] == admin.email
    assert created["ip_address"] == "127.0.0.1" and created["resource_id"] == key["id"]
    assert created["created_at"].endswith("Z") and created["category"] == "settings"
    assert json.loads(created["metadata"])["name"] == "export"
    as_json = await logs(client, admin, resource_type="api_key")
    assert [r["id"] for r in records] == [r["id"] for r in as_json]

    everything = await client.get("/api/v1/audit-logs", headers=admin.headers, params={"format": "csv"})
    assert len(list(csv.reader(io.StringIO(everything.text)))) == 1 + 5
    assert_error(await client.get("/api/v1/audit-logs", headers=admin.headers, params={"format": "xml"}), 400)


async def test_openapi_documents_the_audit_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    listing = paths["/api/v1/audit-logs"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names >= {"event_name", "event_type", "category", "resource_type", "resource_id", "actor_id",
                     "actor_type", "ip_address", "start_date", "end_date", "search", "sort", "page", "per_page",
                     "skip", "limit"}
    assert listing["operationId"] == "audit_logs_list" and listing["summary"]
    assert paths["/api/v1/audit-logs/verify"]["get"]["operationId"] == "audit_logs_verify"
    assert paths["/api/v1/audit-logs/{log_id}"]["get"]["operationId"] == "audit_logs_get"

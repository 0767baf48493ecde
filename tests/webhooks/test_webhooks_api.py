"""Creating, listing, reading and deleting webhooks: validation, refused URLs, secrets, tenancy, audit."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from ronda.webhooks.models import Webhook
from ronda.webhooks.schemas import KNOWN_EVENTS
from tests.conftest import Factory
from tests.support import assert_error

HOOKS = "/api/v1/integrations/webhooks"


async def audit_types(factory: Factory, tenant_id: str, resource_id: str) -> list[str]:
    async with transaction(factory.runtime.sessions, write=False) as session:
        rows = await session.scalars(select(AuditLog.event_type).where(
            AuditLog.tenant_id == tenant_id, AuditLog.resource_id == resource_id).order_by(AuditLog.seq))
        return list(rows.all())


async def test_create_list_get_delete(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    created = await client.post(HOOKS, headers=admin.headers, json={
        "url": "http://127.0.0.1:9/hooks", "events": ["alert.created", "scan.completed", "alert.created"],
        "description": "SIEM", "active": True})
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["id"].startswith("whk_")
    assert hook["events"] == ["alert.created", "scan.completed"]
    assert hook["status"] == "active" and hook["consecutive_failures"] == 0
    secret = hook["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 40

    listed = await client.get(HOOKS, headers=admin.headers)
    assert listed.status_code == 200
    body = listed.json()
    assert body["meta"]["total"] == 1 and [h["id"] for h in body["data"]] == [hook["id"]]
    assert "secret" not in body["data"][0] and secret not in listed.text

    one = await client.get(f"{HOOKS}/{hook['id']}", headers=admin.headers)
    assert one.status_code == 200 and one.json()["description"] == "SIEM"
    assert "secret" not in one.json() and secret not in one.text

    # At rest the secret is encrypted, not the plain text (and not a hash: it must sign).
    async with transaction(factory.runtime.sessions, write=False) as session:
        stored = (await session.scalars(select(Webhook.secret_encrypted).where(Webhook.id == hook["id"]))).one()
    assert secret not in stored and stored.startswith("v1.")

    deleted = await client.delete(f"{HOOKS}/{hook['id']}", headers=admin.headers)
    assert deleted.status_code == 200 and deleted.json()["id"] == hook["id"]
    assert_error(await client.get(f"{HOOKS}/{hook['id']}", headers=admin.headers), 404, "NOT_FOUND")
    assert (await client.get(HOOKS, headers=admin.headers)).json()["meta"]["total"] == 0
    assert await audit_types(factory, admin.tenant_id, hook["id"]) == ["webhook.created", "webhook.deleted"]


async def test_given_secret_and_wildcard(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    response = await client.post(HOOKS, headers=admin.headers, json={
        "url": "https://localhost:8443/x", "events": ["*", "alert.created"], "secret": "my-own-secret-0123456789"})
    assert response.status_code == 201, response.text
    assert response.json()["secret"] == "my-own-secret-0123456789"
    assert response.json()["events"] == ["*"]


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/hook", "http and https"),
    ("file:///etc/passwd", "http and https"),
    ("javascript:alert(1)", "http and https"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.10.20/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://100.100.100.200/latest/meta-data", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://0.0.0.0:8080/", "unicast"),
    ("not a url", "http and https"),
])
async def test_refused_urls(client: httpx.AsyncClient, factory: Factory, url: str, reason: str) -> None:
    admin = await factory.user("admin")
    response = await client.post(HOOKS, headers=admin.headers, json={"url": url, "events": ["alert.created"]})
    body = assert_error(response, 400, "BAD_REQUEST")
    assert reason in body["detail"], body
    assert body["error"]["details"][0]["field"] == "url"
    assert (await client.get(HOOKS, headers=admin.headers)).json()["meta"]["total"] == 0


async def test_private_addresses_refused_when_configured(server_factory: object, factory: Factory) -> None:
    server = await server_factory(webhook_allow_private="off")  # type: ignore[operator]
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url) as http:
        for url in ("http://127.0.0.1:9/", "http://10.1.2.3/", "http://192.168.1.1/", "http://[::1]/",
                    "http://localhost:9/", "http://100.64.0.1/"):
            response = await http.post(HOOKS, headers=admin.headers, json={"url": url, "events": ["*"]})
            assert "RONDA_WEBHOOK_ALLOW_PRIVATE" in assert_error(response, 400)["detail"], url
        ok = await http.post(HOOKS, headers=admin.headers, json={"url": "https://93.184.215.14/", "events": ["*"]})
        assert ok.status_code == 201, ok.text


async def test_unknown_events_are_listed(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    response = await client.post(HOOKS, headers=admin.headers, json={
        "url": "http://127.0.0.1:9/", "events": ["alert.created", "alert.exploded", "nope"]})
    body = assert_error(response, 400, "BAD_REQUEST")
    assert "alert.exploded" in body["detail"] and "nope" in body["detail"]
    for known in KNOWN_EVENTS:
        assert known in body["detail"]
    assert [d["reason"] for d in body["error"]["details"]] == ["unknown event alert.exploded", "unknown event nope"]
    empty = await client.post(HOOKS, headers=admin.headers, json={"url": "http://127.0.0.1:9/", "events": []})
    assert_error(empty, 400, "BAD_REQUEST")


@pytest.mark.parametrize("body", [
    {"events": ["*"]},
    {"url": "http://127.0.0.1:9/"},
    {"url": "http://127.0.0.1:9/", "events": ["*"], "secret": "short"},
    {"url": "http://127.0.0.1:9/", "events": ["*"], "colour": "blue"},
    {"url": "http://127.0.0.1:9/", "events": "alert.created"},
])
async def test_bad_bodies(client: httpx.AsyncClient, factory: Factory, body: dict[str, object]) -> None:
    admin = await factory.user("admin")
    assert_error(await client.post(HOOKS, headers=admin.headers, json=body), 400, "BAD_REQUEST")


async def test_other_tenants_hooks_are_not_found(client: httpx.AsyncClient, factory: Factory) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    hook = (await client.post(HOOKS, headers=theirs.headers, json={
        "url": "http://127.0.0.1:9/", "events": ["*"]})).json()
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/test"), ("GET", "/deliveries")):
        response = await client.request(method, f"{HOOKS}/{hook['id']}{path}", headers=mine.headers)
        assert_error(response, 404, "NOT_FOUND")
    assert (await client.get(HOOKS, headers=mine.headers)).json()["meta"]["total"] == 0
    still = await client.get(f"{HOOKS}/{hook['id']}", headers=theirs.headers)
    assert still.status_code == 200


async def test_only_webhooks_manage(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for role in ("analyst", "operator", "viewer", "user"):
        other = await factory.user(role, tenant_id=admin.tenant_id)
        assert_error(await client.get(HOOKS, headers=other.headers), 403, "FORBIDDEN")
        assert_error(await client.post(HOOKS, headers=other.headers,
                                       json={"url": "http://127.0.0.1:9/", "events": ["*"]}), 403, "FORBIDDEN")


async def test_patch(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    hook = (await client.post(HOOKS, headers=admin.headers, json={
        "url": "http://127.0.0.1:9/a", "events": ["alert.created"], "description": "first"})).json()
    path = f"{HOOKS}/{hook['id']}"

    changed = await client.patch(path, headers=admin.headers, json={
        "events": ["scan.completed", "cve.matched"], "active": False, "description": None})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["events"] == ["scan.completed", "cve.matched"] and body["active"] is False
    assert body["status"] == "inactive" and body["description"] is None and body["secret"] is None

    # Refused changes leave everything as it was.
    for bad in ({"url": "http://169.254.169.254/"}, {"url": "gopher://127.0.0.1/"}, {"events": ["nope"]},
                {"url": None}, {"secret": "x" * 20, "rotate_secret": True}, {"id": "whk_other"}):
        assert_error(await client.patch(path, headers=admin.headers, json=bad), 400, "BAD_REQUEST")
    current = (await client.get(path, headers=admin.headers)).json()
    assert current["url"] == "http://127.0.0.1:9/a" and current["events"] == ["scan.completed", "cve.matched"]

    rotated = (await client.patch(path, headers=admin.headers, json={"rotate_secret": True, "active": True})).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert rotated["status"] == "active"
    moved = (await client.patch(path, headers=admin.headers, json={"url": "http://localhost:9/b"})).json()
    assert moved["url"] == "http://localhost:9/b" and moved["secret"] is None
    assert await audit_types(factory, admin.tenant_id, hook["id"]) == [
        "webhook.created", "webhook.updated", "webhook.updated", "webhook.updated"]
    async with transaction(factory.runtime.sessions, write=False) as session:
        details = (await session.scalars(select(AuditLog.details).where(
            AuditLog.resource_id == hook["id"], AuditLog.event_type == "webhook.updated"))).all()
    assert rotated["secret"] not in str(details)


async def test_url_password_stays_out_of_the_audit_log(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    hook = (await client.post(HOOKS, headers=admin.headers, json={
        "url": "https://bob:pw-in-the-url@127.0.0.1:9/in", "events": ["*"]})).json()
    async with transaction(factory.runtime.sessions, write=False) as session:
        [details] = (await session.scalars(select(AuditLog.details).where(
            AuditLog.resource_id == hook["id"], AuditLog.event_type == "webhook.created"))).all()
    assert details["url"] == "https://bob:***@127.0.0.1:9/in" and details["generated"] is True
    assert "pw-in-the-url" not in str(details)


async def test_list_filters_search_sort_and_paging(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for n, active in ((1, True), (2, False), (3, True)):
        response = await client.post(HOOKS, headers=admin.headers, json={
            "url": f"http://127.0.0.1:9/hook-{n}", "events": ["*"], "description": f"team {n}", "active": active})
        assert response.status_code == 201

    async def urls(**query: str | int) -> list[str]:
        response = await client.get(HOOKS, headers=admin.headers, params=query)
        assert response.status_code == 200, response.text
        return [h["url"].rsplit("/", 1)[1] for h in response.json()["data"]]

    assert await urls() == ["hook-3", "hook-2", "hook-1"]
    assert await urls(sort="url") == ["hook-1", "hook-2", "hook-3"]
    assert await urls(active="false") == ["hook-2"]
    assert await urls(search="TEAM 3") == ["hook-3"]
    assert await urls(page=2, per_page=2) == ["hook-1"]
    assert_error(await client.get(HOOKS, headers=admin.headers, params={"sort": "secret"}), 400, "BAD_REQUEST")
    assert_error(await client.get(HOOKS, headers=admin.headers, params={"per_page": 0}), 400, "BAD_REQUEST")

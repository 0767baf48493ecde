"""The 004 seed's services and security-review endpoints, exactly as documented (base URL /v1)."""

from __future__ import annotations

import httpx

from tests.conftest import Factory
from tests.services.helpers import audit_events
from tests.support import assert_error

SEED_SERVICE = {
    "name": "GitHub", "description": "Source code hosting", "category": "development", "url": "https://github.com",
    "owner_id": None, "data_classification": "confidential", "sso_enabled": True, "mfa_enforced": True,
}
SEED_REVIEW = {
    "review_date": "2026-01-04", "next_review_date": "2026-04-04", "findings": "All security controls verified.",
    "sso_enabled": True, "mfa_enforced": True, "audit_logging_enabled": True,
}
FIELDS = {"id", "tenant_id", "name", "description", "category", "url", "owner_id", "data_classification",
          "sso_enabled", "mfa_enforced", "audit_logging_enabled", "encrypted_at_rest", "data_location",
          "review_frequency", "status", "issues", "review_overdue", "last_review_date", "next_review_date",
          "created_at", "updated_at"}


async def test_the_seed_walkthrough(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    created = await client.post("/v1/services", headers=admin.headers, json={**SEED_SERVICE, "owner_id": owner.id})
    assert created.status_code == 201, created.text
    service = created.json()
    assert set(service) == FIELDS
    assert service["id"].startswith("svc_") and service["tenant_id"] == admin.tenant_id
    assert {k: service[k] for k in SEED_SERVICE} == {**SEED_SERVICE, "owner_id": owner.id}
    # Never reviewed: needs review; the answers meet the default policy for confidential data.
    assert service["status"] == "needs_review" and service["issues"] == [] and service["last_review_date"] is None
    assert service["created_at"].endswith("Z")

    # GET /services: admins see all; users see services they own; status, search, skip/limit.
    await client.post("/v1/services", headers=admin.headers, json={"name": "Slack", "category": "communication"})
    listed = (await client.get("/v1/services", headers=admin.headers)).json()
    assert [s["name"] for s in listed["data"]] == ["GitHub", "Slack"]
    assert listed["meta"] == {"total": 2, "page": 1, "per_page": 100, "skip": 0, "limit": 100}
    mine = (await client.get("/v1/services", headers=owner.headers)).json()
    assert [s["id"] for s in mine["data"]] == [service["id"]]
    searched = (await client.get("/v1/services?search=git&status=needs_review&skip=0&limit=1",
                                 headers=admin.headers)).json()
    assert [s["name"] for s in searched["data"]] == ["GitHub"] and searched["meta"]["total"] == 1
    assert (await client.get("/v1/services?skip=1&limit=1", headers=admin.headers)).json()["data"][0]["name"] == "Slack"

    # GET /services/{id}
    one = await client.get(f"/v1/services/{service['id']}", headers=owner.headers)
    assert one.status_code == 200 and one.json()["id"] == service["id"]

    # POST /services/{id}/reviews with the seed's body, by the owner.
    reviewed = await client.post(f"/v1/services/{service['id']}/reviews", headers=owner.headers, json=SEED_REVIEW)
    assert reviewed.status_code == 201, reviewed.text
    rev = reviewed.json()
    assert rev["id"].startswith("rev_") and rev["service_id"] == service["id"] and rev["reviewer_id"] == owner.id
    assert {k: rev[k] for k in SEED_REVIEW} == SEED_REVIEW
    # Answers left out keep the service's current ones.
    assert rev["data_classification"] == "confidential" and rev["encrypted_at_rest"] is False
    after = (await client.get(f"/v1/services/{service['id']}", headers=admin.headers)).json()
    assert after["last_review_date"] == "2026-01-04" and after["next_review_date"] == "2026-04-04"
    assert after["audit_logging_enabled"] is True

    # GET /services/{id}/reviews
    history = (await client.get(f"/v1/services/{service['id']}/reviews", headers=admin.headers)).json()
    assert [r["id"] for r in history["data"]] == [rev["id"]] and history["meta"]["total"] == 1

    # PATCH by the owner; DELETE is admin only.
    patched = await client.patch(f"/v1/services/{service['id']}", headers=owner.headers,
                                 json={"description": "Code and CI"})
    assert patched.status_code == 200 and patched.json()["description"] == "Code and CI"
    assert_error(await client.delete(f"/v1/services/{service['id']}", headers=owner.headers), 403, "FORBIDDEN")

    # GET /services/my-dashboard for the owner.
    board = (await client.get("/v1/services/my-dashboard", headers=owner.headers)).json()
    assert board["total_services"] == 1

    deleted = await client.delete(f"/v1/services/{service['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert_error(await client.get(f"/v1/services/{service['id']}", headers=admin.headers), 404, "NOT_FOUND")
    assert_error(await client.get(f"/v1/services/{service['id']}/reviews", headers=admin.headers), 404)

    # Every change was audited, in the tenant's chain.
    for event_type, count in (("service.created", 1), ("service.updated", 1), ("service.reviewed", 1),
                              ("service.deleted", 1)):
        records = await audit_events(factory, admin.tenant_id, event_type, service["id"])
        assert len(records) == count, event_type
    reviewed_record = (await audit_events(factory, admin.tenant_id, "service.reviewed", service["id"]))[0]
    assert reviewed_record.event_name == "Service Review Completed" and reviewed_record.actor_id == owner.id
    assert reviewed_record.details["review_id"] == rev["id"]

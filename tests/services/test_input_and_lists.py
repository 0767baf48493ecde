"""Bad input is a clean 4xx with nothing written; filters, sort, both pagination styles; CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from ronda.services.models import Service, ServiceReview
from tests.conftest import Factory
from tests.devices.inventory_helpers import count_rows
from tests.services.helpers import SERVICES, add_service, review
from tests.support import assert_error


@pytest.mark.parametrize("body", [
    {"name": "X", "category": "gaming"},
    {"name": "X", "data_classification": "secret"},
    {"name": "X", "review_frequency": "weekly"},
    {"name": "X", "url": "ftp://example.com"},
    {"name": "X", "url": "javascript:alert(1)"},
    {"name": ""},
    {"category": "development"},
    {"name": "X", "status": "compliant"},
    {"name": "X", "last_review_date": "2026-01-01"},
    {"name": "X", "sso_enabled": "maybe"},
    {"name": "X", "next_review_date": "tomorrow"},
    {"name": "X", "tenant_id": "tenant_other"},
])
async def test_bad_service_bodies(client: httpx.AsyncClient, factory: Factory, body: dict[str, Any]) -> None:
    admin = await factory.user("admin")
    assert_error(await client.post(SERVICES, headers=admin.headers, json=body), 400, "BAD_REQUEST")
    assert await count_rows(factory, Service, tenant_id=admin.tenant_id) == 0


async def test_owner_must_be_an_active_user_of_the_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    stranger = await factory.user("user", login=False)
    gone = await factory.user("user", tenant_id=admin.tenant_id, login=False, is_active=False)
    for owner in (stranger.id, gone.id, "user_nobody"):
        response = await client.post(SERVICES, headers=admin.headers, json={"name": "X", "owner_id": owner})
        assert assert_error(response, 400, "BAD_REQUEST")["error"]["details"][0]["field"] == "owner_id"
    assert await count_rows(factory, Service, tenant_id=admin.tenant_id) == 0
    svc = await add_service(client, admin)
    patch = await client.patch(f"{SERVICES}/{svc['id']}", headers=admin.headers, json={"owner_id": stranger.id})
    assert_error(patch, 400, "BAD_REQUEST")
    assert (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()["owner_id"] is None


async def test_bad_patches_and_reviews(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    svc = await add_service(client, admin, description="keep me")
    for body in ({"name": None}, {"category": "gaming"}, {"sso_enabled": None}, {"review_frequency": None},
                 {"id": "svc_x"}, {"status": "compliant"}):
        assert_error(await client.patch(f"{SERVICES}/{svc['id']}", headers=admin.headers, json=body), 400)
    cleared = await client.patch(f"{SERVICES}/{svc['id']}", headers=admin.headers, json={"description": None})
    assert cleared.status_code == 200 and cleared.json()["description"] is None
    for body in ({"review_date": "2999-01-01"}, {"review_date": "not a date"}, {"data_classification": "secret"},
                 {"findings": "x" * 20001}, {"reviewer_id": admin.id}, {"status": "compliant"}):
        assert_error(await review(client, admin, svc["id"], **body), 400, "BAD_REQUEST")
    assert await count_rows(factory, ServiceReview, service_id=svc["id"]) == 0
    assert (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()["last_review_date"] is None


async def test_filters_sort_and_pagination(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    a = await add_service(client, admin, name="AWS", category="infrastructure", data_classification="restricted",
                          owner_id=owner.id, description="cloud")
    b = await add_service(client, admin, name="Okta", category="security", data_classification="confidential",
                          sso_enabled=True, mfa_enforced=True)
    c = await add_service(client, admin, name="Canva", category="marketing", data_classification="public",
                          url="https://www.canva.com")
    await review(client, admin, b["id"], review_date="2026-11-01", next_review_date="2099-01-01")
    h = admin.headers

    async def names(query: str) -> list[str]:
        response = await client.get(f"{SERVICES}?{query}", headers=h)
        assert response.status_code == 200, response.text
        return [s["name"] for s in response.json()["data"]]

    assert await names("") == ["AWS", "Canva", "Okta"]
    assert await names("category=security") == ["Okta"]
    assert await names(f"owner_id={owner.id}") == ["AWS"]
    assert await names("data_classification=public") == ["Canva"]
    assert await names("status=non_compliant") == ["AWS"]  # restricted without SSO, MFA, logging, encryption
    assert await names("status=compliant") == ["Okta"]
    assert await names("status=needs_review") == ["Canva"]
    assert await names("search=CLOUD") == ["AWS"]
    assert await names("search=canva.com") == ["Canva"]
    assert await names("sort=-name") == ["Okta", "Canva", "AWS"]
    assert await names("sort=data_classification") == ["Okta", "Canva", "AWS"]
    assert await names("sort=-status") == ["AWS", "Canva", "Okta"]  # non_compliant, needs_review, compliant
    assert await names("page=2&per_page=2") == ["Okta"]
    assert await names("skip=1&limit=1") == ["Canva"]
    meta = (await client.get(f"{SERVICES}?page=2&per_page=2", headers=h)).json()["meta"]
    assert meta == {"total": 3, "page": 2, "per_page": 2, "skip": 2, "limit": 2}
    for query in ("status=fine", "category=gaming", "data_classification=secret", "sort=owner", "limit=101",
                  "per_page=0", "page=1&limit=5"):
        assert_error(await client.get(f"{SERVICES}?{query}", headers=h), 400, "BAD_REQUEST")
    assert a["issues"] and c["issues"] == []


async def test_csv_export(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    await add_service(client, admin, name="=HYPERLINK()", category="other")
    svc = await add_service(client, admin, name="GitHub", url="https://github.com", owner_id=owner.id,
                            data_classification="confidential", sso_enabled=True, mfa_enforced=True,
                            data_location="EU")
    await review(client, admin, svc["id"], review_date="2026-11-01", next_review_date="2099-02-01")
    response = await client.get(SERVICES, headers={**admin.headers, "Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="services.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["id", "name", "category", "url", "owner_id", "data_classification", "sso_enabled",
                             "mfa_enforced", "audit_logging_enabled", "encrypted_at_rest", "data_location",
                             "review_frequency", "status", "last_review_date", "next_review_date", "created_at"]
    assert [r["name"] for r in rows] == ["'=HYPERLINK()", "GitHub"]  # formulas are neutralised
    github = rows[1]
    assert (github["id"], github["owner_id"], github["sso_enabled"], github["audit_logging_enabled"]) == (
        svc["id"], owner.id, "true", "false")
    assert (github["status"], github["last_review_date"], github["next_review_date"]) == (
        "compliant", "2026-11-01", "2099-02-01")
    assert github["created_at"].endswith("Z")
    # Same filters as the JSON list; the user role exports only what it owns.
    filtered = await client.get(f"{SERVICES}?format=csv&category=other", headers=admin.headers)
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 1
    own = await client.get(f"{SERVICES}?format=csv", headers=owner.headers)
    assert [r["id"] for r in csv.DictReader(io.StringIO(own.text))] == [svc["id"]]

    # The review history as CSV: one service's audit evidence.
    history = await client.get(f"{SERVICES}/{svc['id']}/reviews?format=csv", headers=owner.headers)
    assert history.headers["content-disposition"] == f'attachment; filename="{svc["id"]}-reviews.csv"'
    reviews = list(csv.DictReader(io.StringIO(history.text)))
    assert [(r["service_id"], r["reviewer_id"], r["review_date"], r["status"], r["data_location"]) for r in reviews] \
        == [(svc["id"], admin.id, "2026-11-01", "compliant", "EU")]

"""GET /dashboard and GET /services/my-dashboard against seeded devices, services and reviews (fixed clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ronda.agents.sweeper import sweep_stale_devices
from tests.conftest import Account, Factory
from tests.devices.inventory_helpers import add_device
from tests.services.helpers import SERVICES, add_service, review
from tests.support import assert_error

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OK = {"sso_enabled": True, "mfa_enforced": True}


async def seed(client: httpx.AsyncClient, factory: Factory, admin: Account, owner: Account) -> dict[str, str]:
    tenant = admin.tenant_id
    # Fresh under the fixed clock (not before NOW less the 7-day policy) and under the real one, which the
    # servers' stale-device sweeper goes by: a sweep during the test must not make these `unknown`.
    fresh = max(NOW, datetime.now(UTC)) - timedelta(days=1)
    for status, user in (("compliant", owner.id), ("compliant", None), ("non_compliant", owner.id),
                         ("needs_review", None)):
        await add_device(factory, tenant, compliance_status=status, last_report_at=fresh, user_id=user)
    await add_device(factory, tenant)  # never reported: unknown
    await add_device(factory, tenant, compliance_status="compliant", last_report_at=NOW - timedelta(days=30))  # stale

    ids = {}
    ids["good"] = (await add_service(client, admin, name="Okta", owner_id=owner.id, **OK))["id"]
    await review(client, admin, ids["good"], review_date="2026-05-01", next_review_date="2026-06-20")
    ids["late"] = (await add_service(client, admin, name="Jira", owner_id=owner.id))["id"]
    await review(client, admin, ids["late"], review_date="2026-01-01", next_review_date="2026-05-01")
    ids["new"] = (await add_service(client, admin, name="Figma", owner_id=owner.id))["id"]
    ids["bad"] = (await add_service(client, admin, name="AWS", data_classification="restricted"))["id"]
    await review(client, admin, ids["bad"], review_date="2026-05-15", next_review_date="2027-05-15")
    ids["far"] = (await add_service(client, admin, name="Slack"))["id"]
    await review(client, admin, ids["far"], review_date="2026-05-20", next_review_date="2026-12-01")
    return ids


async def test_dashboards_count_the_seeded_tenant(server_factory: Any, factory: Factory) -> None:
    server = await server_factory()
    server.app.state.clock = lambda: NOW
    async with httpx.AsyncClient(base_url=server.url) as client:
        admin = await factory.user("admin")
        owner = await factory.user("user", tenant_id=admin.tenant_id)
        viewer = await factory.user("viewer", tenant_id=admin.tenant_id)
        ids = await seed(client, factory, admin, owner)
        # The servers' stale-device sweep (real clock) may run at any moment: here it does, so that it
        # always has (it makes the stale device `unknown`, which it is here anyway, with an audit record).
        await sweep_stale_devices(factory.runtime.sessions, None)

        board = await client.get("/api/v1/dashboard", headers=admin.headers)
        assert board.status_code == 200, board.text
        body = board.json()
        assert body["as_of"] == "2026-06-01" and body["scope"] == "tenant"
        assert body["devices"] == {"total": 6, "compliance_score": 50.0, "by_status": {
            "compliant": 2, "needs_review": 1, "non_compliant": 1, "unknown": 2}}
        assert body["services"] == {"total": 5, "compliance_score": 40.0, "never_reviewed": 1, "overdue": 1,
                                    "by_status": {"compliant": 2, "needs_review": 2, "non_compliant": 1}}
        # (2 compliant devices + 2 compliant services) / (4 evaluated devices + 5 services)
        assert body["compliance_score"] == round(400 / 9, 1)
        assert [s["id"] for s in body["services_due"]] == [ids["bad"], ids["new"], ids["late"]]
        late = body["services_due"][2]
        assert (late["status"], late["next_review_date"], late["days_until_due"]) == ("needs_review", "2026-05-01",
                                                                                     -31)
        assert [(s["id"], s["days_until_due"]) for s in body["upcoming_reviews"]] == [(ids["good"], 19)]
        wider = (await client.get("/api/v1/dashboard?days=200", headers=admin.headers)).json()
        assert [s["id"] for s in wider["upcoming_reviews"]] == [ids["good"], ids["far"]]
        activity = body["recent_activity"]
        # Three logins, five services created, four reviewed, then the sweep's verdict on the stale
        # device; newest first.
        assert len(activity) == 13 and activity[0]["event_type"] == "device.compliance_changed"
        assert {a["event_type"] for a in activity} == {"auth.login.succeeded", "service.created", "service.reviewed",
                                                      "device.compliance_changed"}

        # A viewer sees the tenant, but only its own audit records (it may not read the audit log).
        seen = (await client.get("/api/v1/dashboard", headers=viewer.headers)).json()
        assert seen["devices"] == body["devices"]
        assert [a["event_type"] for a in seen["recent_activity"]] == ["auth.login.succeeded"]
        assert seen["recent_activity"][0]["actor_id"] == viewer.id

        # The user role sees what it owns.
        own = (await client.get("/api/v1/dashboard", headers=owner.headers)).json()
        assert own["scope"] == "own"
        assert own["devices"]["by_status"] == {"compliant": 1, "needs_review": 0, "non_compliant": 1, "unknown": 0}
        assert own["services"]["by_status"] == {"compliant": 1, "needs_review": 2, "non_compliant": 0}
        assert own["compliance_score"] == 40.0  # (1 + 1) / (2 + 3)
        assert [s["id"] for s in own["services_due"]] == [ids["new"], ids["late"]]

        mine = (await client.get(f"{SERVICES}/my-dashboard", headers=owner.headers)).json()
        assert mine == {
            "total_services": 3, "as_of": "2026-06-01", "compliance_score": round(100 / 3, 1), "never_reviewed": 1,
            "by_status": {"compliant": 1, "needs_review": 2, "non_compliant": 0},
            "by_category": {"development": 3},
            "overdue_reviews": [{"id": ids["late"], "name": "Jira", "category": "development", "owner_id": owner.id,
                                 "status": "needs_review", "last_review_date": "2026-01-01",
                                 "next_review_date": "2026-05-01", "days_until_due": -31}],
            "upcoming_reviews": [{"id": ids["good"], "name": "Okta", "category": "development",
                                  "owner_id": owner.id, "status": "compliant", "last_review_date": "2026-05-01",
                                  "next_review_date": "2026-06-20", "days_until_due": 19}],
        }
        narrow = (await client.get(f"{SERVICES}/my-dashboard?days=10", headers=owner.headers)).json()
        assert narrow["upcoming_reviews"] == []
        # The admin owns none of them.
        empty = (await client.get(f"{SERVICES}/my-dashboard", headers=admin.headers)).json()
        assert (empty["total_services"], empty["compliance_score"], empty["overdue_reviews"]) == (0, None, [])

        # The clock moves on: Okta's review lapses too.
        server.app.state.clock = lambda: NOW + timedelta(days=20)
        later = (await client.get(f"{SERVICES}/my-dashboard", headers=owner.headers)).json()
        assert [s["id"] for s in later["overdue_reviews"]] == [ids["late"], ids["good"]]
        assert later["by_status"] == {"compliant": 0, "needs_review": 3, "non_compliant": 0}

        for query in ("days=0", "days=366", "days=soon"):
            assert_error(await client.get(f"/api/v1/dashboard?{query}", headers=admin.headers), 400, "BAD_REQUEST")
            assert_error(await client.get(f"{SERVICES}/my-dashboard?{query}", headers=owner.headers), 400)


async def test_an_empty_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    body = (await client.get("/api/v1/dashboard", headers=admin.headers)).json()
    assert body["compliance_score"] is None and body["devices"]["total"] == 0 and body["services"]["total"] == 0
    assert body["services_due"] == [] and body["upcoming_reviews"] == []
    agent_less = await client.get("/api/v1/dashboard")
    assert_error(agent_less, 401, "UNAUTHORIZED")

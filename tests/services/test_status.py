"""Review scheduling and status transitions, with fixed clocks; the overdue event, published once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from ronda.core.events import Event
from ronda.services import overdue, status
from ronda.services.models import Service
from ronda.services.policy import ServicePolicy
from tests.conftest import Factory
from tests.services.helpers import SERVICES, add_service, audit_events, review
from tests.support import assert_error

POLICY = ServicePolicy.of(None)


def fixed(day: date) -> Any:
    return lambda: datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.mark.parametrize(("start", "frequency", "expected"), [
    (date(2026, 1, 4), "monthly", date(2026, 2, 4)),
    (date(2026, 1, 31), "monthly", date(2026, 2, 28)),
    (date(2028, 1, 31), "monthly", date(2028, 2, 29)),
    (date(2026, 1, 4), "quarterly", date(2026, 4, 4)),
    (date(2026, 11, 30), "quarterly", date(2027, 2, 28)),
    (date(2026, 8, 31), "semiannual", date(2027, 2, 28)),
    (date(2026, 1, 4), "annual", date(2027, 1, 4)),
    (date(2028, 2, 29), "annual", date(2029, 2, 28)),
])
def test_next_review_from_the_frequency(start: date, frequency: str, expected: date) -> None:
    assert status.next_review_after(start, frequency) == expected


def _service(**fields: Any) -> Service:
    values: dict[str, Any] = {"data_classification": "internal", "sso_enabled": False, "mfa_enforced": False,
                              "audit_logging_enabled": False, "encrypted_at_rest": False,
                              "last_review_date": date(2026, 1, 4), "next_review_date": date(2026, 4, 4)}
    values.update(fields)
    return Service(**values)


def test_status_rules_as_time_passes() -> None:
    reviewed = _service()
    assert status.decide(reviewed, POLICY, date(2026, 4, 4)) == "compliant"  # due today: not yet overdue
    assert status.decide(reviewed, POLICY, date(2026, 4, 5)) == "needs_review"
    assert status.decide(_service(last_review_date=None), POLICY, date(2026, 1, 5)) == "needs_review"
    assert status.decide(_service(next_review_date=None), POLICY, date(2026, 1, 5)) == "needs_review"
    # Confidential data without SSO or MFA breaks the default policy, whatever the dates.
    risky = _service(data_classification="confidential", sso_enabled=True)
    assert status.decide(risky, POLICY, date(2026, 1, 5)) == "non_compliant"
    assert POLICY.issues(risky) == ["mfa_enforced is required for confidential data"]
    restricted = _service(data_classification="restricted", sso_enabled=True, mfa_enforced=True)
    assert set(POLICY.issues(restricted)) == {"audit_logging_enabled is required for restricted data",
                                              "encrypted_at_rest is required for restricted data"}
    # The stored status read later: compliant lapses into needs_review; the others stay.
    reviewed.status = "compliant"
    assert status.effective_status(reviewed, date(2026, 4, 4)) == "compliant"
    assert status.effective_status(reviewed, date(2026, 4, 5)) == "needs_review"
    risky.status = "non_compliant"
    assert status.effective_status(risky, date(2030, 1, 1)) == "non_compliant"


async def test_transitions_over_http_with_a_fixed_clock(server_factory: Any, factory: Factory) -> None:
    server = await server_factory()
    server.app.state.clock = fixed(date(2026, 3, 1))
    async with httpx.AsyncClient(base_url=server.url) as client:
        admin = await factory.user("admin")
        svc = await add_service(client, admin, name="Notion", category="productivity",
                                review_frequency="quarterly", data_classification="confidential",
                                sso_enabled=True, mfa_enforced=True)
        assert svc["status"] == "needs_review"  # never reviewed

        # A review without next_review_date: the quarterly frequency schedules it.
        first = await review(client, admin, svc["id"], review_date="2026-02-15", findings="ok")
        assert first.status_code == 201, first.text
        assert first.json()["next_review_date"] == "2026-05-15" and first.json()["status"] == "compliant"
        now = (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()
        assert (now["status"], now["last_review_date"], now["review_overdue"]) == ("compliant", "2026-02-15", False)

        # Time passes beyond the due date: needs_review at read time, in the list filter and the CSV.
        server.app.state.clock = fixed(date(2026, 5, 16))
        later = (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()
        assert (later["status"], later["review_overdue"]) == ("needs_review", True)
        due = (await client.get(f"{SERVICES}?status=needs_review", headers=admin.headers)).json()
        assert [s["id"] for s in due["data"]] == [svc["id"]]
        assert (await client.get(f"{SERVICES}?status=compliant", headers=admin.headers)).json()["data"] == []
        csv_text = (await client.get(f"{SERVICES}?format=csv", headers=admin.headers)).text
        assert ",needs_review," in csv_text.splitlines()[1]

        # A review that turns MFA off makes it non-compliant; one that restores it, compliant again.
        bad = await review(client, admin, svc["id"], mfa_enforced=False, findings="MFA was switched off")
        assert bad.json()["status"] == "non_compliant" and bad.json()["review_date"] == "2026-05-16"
        assert bad.json()["next_review_date"] == "2026-08-16"
        listed = (await client.get(f"{SERVICES}?status=non_compliant", headers=admin.headers)).json()["data"]
        assert [s["issues"] for s in listed] == [["mfa_enforced is required for confidential data"]]
        good = await review(client, admin, svc["id"], mfa_enforced=True, next_review_date="2026-06-30")
        assert good.json()["status"] == "compliant" and good.json()["next_review_date"] == "2026-06-30"

        # A backfilled older review is history only: the current state stays the newest review's.
        old = await review(client, admin, svc["id"], review_date="2025-11-01", mfa_enforced=False)
        assert old.status_code == 201 and old.json()["status"] == "non_compliant"
        current = (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()
        assert (current["mfa_enforced"], current["last_review_date"], current["status"]) == (True, "2026-05-16",
                                                                                             "compliant")
        history = (await client.get(f"{SERVICES}/{svc['id']}/reviews", headers=admin.headers)).json()["data"]
        assert [r["review_date"] for r in history] == ["2026-05-16", "2026-05-16", "2026-02-15", "2025-11-01"]

        # Reviews dated in the future (by the server's clock) are refused, nothing written.
        future = await review(client, admin, svc["id"], review_date="2026-05-17")
        assert assert_error(future, 400, "BAD_REQUEST")["error"]["details"][0]["field"] == "review_date"
        before = await review(client, admin, svc["id"], review_date="2026-05-10", next_review_date="2026-05-10")
        assert_error(before, 400, "BAD_REQUEST")
        assert len((await client.get(f"{SERVICES}/{svc['id']}/reviews", headers=admin.headers)).json()["data"]) == 4


async def test_policy_is_a_tenant_setting(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    svc = await add_service(client, admin, name="Zoom", category="communication", data_classification="internal")
    ok = await review(client, admin, svc["id"], review_date="2026-11-01", next_review_date="2027-11-01")
    assert ok.json()["status"] == "compliant"
    policy = (await client.get("/api/v1/tenants/current", headers=admin.headers)).json()["compliance_policy"]
    assert policy["services"]["require_sso_for"] == ["confidential", "restricted"]

    # Requiring SSO for internal data makes the service non-compliant at once.
    rules = {"services": {"require_sso_for": ["restricted", "internal"]}}
    stricter = await client.patch("/api/v1/tenants/current", headers=admin.headers, json={"compliance_policy": rules})
    assert stricter.status_code == 200, stricter.text
    services_policy = stricter.json()["compliance_policy"]["services"]
    assert services_policy["require_sso_for"] == ["internal", "restricted"]
    assert services_policy["require_mfa_for"] == ["confidential", "restricted"]  # untouched
    now = (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()
    assert now["status"] == "non_compliant" and now["issues"] == ["sso_enabled is required for internal data"]
    # The device part of the policy was left alone.
    assert stricter.json()["compliance_policy"]["stale_after_days"] == 7

    relaxed = await client.patch("/api/v1/tenants/current", headers=admin.headers,
                                 json={"compliance_policy": {"services": {"require_sso_for": []}}})
    assert relaxed.status_code == 200
    assert (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()["status"] == "compliant"
    bad = await client.patch("/api/v1/tenants/current", headers=admin.headers,
                             json={"compliance_policy": {"services": {"require_sso_for": ["secret"]}}})
    assert_error(bad, 400, "BAD_REQUEST")


async def test_overdue_is_published_once_per_due_date(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    lapsing = await add_service(client, admin, name="Jira", owner_id=owner.id)
    await review(client, admin, lapsing["id"], review_date="2025-01-10", next_review_date="2025-04-10")
    current = await add_service(client, admin, name="Linear")
    await review(client, admin, current["id"], review_date="2025-01-10", next_review_date="2025-12-31")
    never = await add_service(client, admin, name="Never scheduled")

    heard: list[Event] = []
    bus = factory.live.app.state.events
    unsubscribe = bus.subscribe(lambda event: heard.append(event) if event.tenant_id == admin.tenant_id else None)
    try:
        runtime = factory.runtime
        assert await overdue.sweep(runtime, bus, date(2025, 4, 10), admin.tenant_id) == []  # due today: not yet
        first = await overdue.sweep(runtime, bus, date(2025, 4, 11), admin.tenant_id)
        expected = {"service_id": lapsing["id"], "name": "Jira", "owner_id": owner.id,
                    "next_review_date": "2025-04-10"}
        assert first == [{"tenant_id": admin.tenant_id, **expected}]
        # Later rounds, however many, announce nothing new.
        assert await overdue.sweep(runtime, bus, date(2025, 4, 12), admin.tenant_id) == []
        assert await overdue.sweep(runtime, bus, date(2025, 5, 1), admin.tenant_id) == []
        assert [(e.type, e.data) for e in heard if e.type == "service.review_overdue"] == [
            ("service.review_overdue", expected)]

        # A new review opens a new period: when it lapses in turn, it is announced again.
        await review(client, owner, lapsing["id"], review_date="2025-05-01", next_review_date="2025-06-01")
        again = await overdue.sweep(runtime, bus, date(2025, 6, 2), admin.tenant_id)
        assert [e["next_review_date"] for e in again] == ["2025-06-01"]
    finally:
        unsubscribe()
    records = await audit_events(factory, admin.tenant_id, "service.review_overdue")
    assert [(r.resource_id, r.actor_type, r.details["next_review_date"]) for r in records] == [
        (lapsing["id"], "system", "2025-04-10"), (lapsing["id"], "system", "2025-06-01")]
    assert never["next_review_date"] is None


async def test_a_new_frequency_reschedules_from_the_last_review(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    svc = await add_service(client, admin, review_frequency="annual")
    await review(client, admin, svc["id"], review_date="2026-10-31")
    assert (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()["next_review_date"] == \
        "2027-10-31"
    monthly = await client.patch(f"{SERVICES}/{svc['id']}", headers=admin.headers, json={"review_frequency": "monthly"})
    assert monthly.json()["next_review_date"] == "2026-11-30"
    explicit = await client.patch(f"{SERVICES}/{svc['id']}", headers=admin.headers,
                                  json={"review_frequency": "quarterly", "next_review_date": "2027-03-01"})
    assert explicit.json()["next_review_date"] == "2027-03-01"
    changes = (await audit_events(factory, admin.tenant_id, "service.updated", svc["id"]))[0].details["changes"]
    assert changes == {"review_frequency": {"old": "annual", "new": "monthly"},
                       "next_review_date": {"old": "2027-10-31", "new": "2026-11-30"}}


async def test_the_background_sweeper_runs_in_the_server(server_factory: Any, factory: Factory) -> None:
    server = await server_factory(service_review_sweep_interval=0.3)
    server.app.state.clock = fixed(date(2024, 6, 1))
    heard: list[Event] = []
    async with httpx.AsyncClient(base_url=server.url) as client:
        admin = await factory.user("admin")
        # Only this tenant's events: the database is shared, and other tests' services lapse under this clock too.
        server.app.state.events.subscribe(
            lambda event: heard.append(event) if event.tenant_id == admin.tenant_id else None)
        svc = await add_service(client, admin, name="Dropbox")
        await review(client, admin, svc["id"], review_date="2024-01-02", next_review_date="2024-05-01")
        for _ in range(50):
            if any(e.type == overdue.EVENT for e in heard):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.7)  # two more rounds: still one event
        assert [(e.type, e.tenant_id, e.data["service_id"]) for e in heard if e.type == overdue.EVENT] == [
            ("service.review_overdue", admin.tenant_id, svc["id"])]
        now = (await client.get(f"{SERVICES}/{svc['id']}", headers=admin.headers)).json()
        assert now["status"] == "needs_review" and now["review_overdue"] is True

"""Scrape-time gauges on /metrics against the shared live server: rows are seeded straight into the
database, and each figure must move by exactly what was seeded (the server is shared between tests,
so every check compares with a scrape taken just before seeding)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from ronda.agents.models import Agent
from ronda.alerts.models import Alert
from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.devices.models import Device
from ronda.reports.models import Report
from ronda.scans.models import Scan
from ronda.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import Factory

Key = tuple[str, tuple[tuple[str, str], ...]]
GAUGES = ("ronda_scans", "ronda_queue_depth", "ronda_webhooks_failing", "ronda_alerts_open", "ronda_devices",
          "ronda_agents")


async def scrape(client: httpx.AsyncClient) -> dict[Key, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def key(name: str, **labels: str) -> Key:
    return name, tuple(sorted(labels.items()))


@dataclass
class Seeded:
    """What one round inserted, so the test can put it out of the runners' way afterwards."""
    scans: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)


# What one seeding round must add to each figure (figures not named must not move).
EXPECTED: dict[Key, float] = {
    key("ronda_scans", status="queued"): 2, key("ronda_scans", status="running"): 1,
    key("ronda_queue_depth", queue="scans_queued"): 2, key("ronda_queue_depth", queue="reports_pending"): 2,
    key("ronda_queue_depth", queue="reports_running"): 1,
    key("ronda_queue_depth", queue="webhook_deliveries_pending"): 2,
    key("ronda_webhooks_failing"): 1,
    key("ronda_alerts_open", severity="critical"): 2, key("ronda_alerts_open", severity="low"): 1,
    key("ronda_devices", compliance_status="compliant"): 2, key("ronda_devices", compliance_status="non_compliant"): 1,
    key("ronda_devices", compliance_status="needs_review"): 1,
    key("ronda_agents", state="online"): 1, key("ronda_agents", state="offline"): 2,
}


async def seed(factory: Factory, seeded: Seeded) -> None:
    tenant = await factory.tenant()
    now = utcnow()
    async with transaction(factory.runtime.sessions) as session:
        # Scans held by a runner on another host with a fresh heartbeat: no sweeper here fails them.
        scans = [Scan(tenant_id=tenant, target="10.9.0.0/24", networks=["10.9.0.0/24"], target_key="m" * 16,
                      profile="quick", status=status, runner_id="elsewhere:1:metrics-test", heartbeat_at=now)
                 for status in ("queued", "queued", "running", "completed")]
        # A running report with a long lease: no runner recovers it during the test.
        reports = [Report(tenant_id=tenant, kind="compliance", framework="iso27001", format="json", status=status,
                          lease_expires_at=now + timedelta(hours=1) if status == "running" else None)
                   for status in ("pending", "pending", "running", "completed")]
        failing = Webhook(tenant_id=tenant, url="http://127.0.0.1:9/hook", events=["*"], secret_encrypted="x",
                          failing_since=now, consecutive_failures=3)
        healthy = Webhook(tenant_id=tenant, url="http://127.0.0.1:9/ok", events=["*"], secret_encrypted="x")
        paused = Webhook(tenant_id=tenant, url="http://127.0.0.1:9/off", events=["*"], secret_encrypted="x",
                         active=False, failing_since=now)  # failing but switched off: not counted
        session.add_all([*scans, *reports, failing, healthy, paused])
        await session.flush()
        # Pending deliveries due tomorrow: the dispatcher leaves them alone.
        deliveries = [WebhookDelivery(tenant_id=tenant, webhook_id=failing.id, event_id=f"evt_{secrets.token_hex(6)}",
                                      event_type="alert.created", payload="{}", status=status,
                                      next_attempt_at=now + timedelta(days=1))
                      for status in ("pending", "pending", "succeeded", "failed")]
        session.add_all(deliveries)
        session.add_all([Alert(tenant_id=tenant, rule="metrics_test", subject=f"s{n}", title="t", severity=severity,
                               status=status, source="test")
                         for n, (severity, status) in enumerate([("critical", "open"), ("critical", "open"),
                                                                 ("low", "open"), ("high", "acknowledged"),
                                                                 ("critical", "resolved")])])
        devices = [Device(tenant_id=tenant, hostname=f"metrics-{n}", compliance_status=status)
                   for n, status in enumerate(("compliant", "compliant", "non_compliant", "needs_review"))]
        session.add_all(devices)
        await session.flush()
        beats = [now, now - timedelta(days=1), None, now]  # online, silent, never seen, revoked
        session.add_all([Agent(tenant_id=tenant, device_id=device.id, credential_hash=secrets.token_hex(32),
                               credential_prefix="agt_test", last_heartbeat_at=beat,
                               revoked_at=now if n == 3 else None)
                         for n, (device, beat) in enumerate(zip(devices, beats, strict=True))])
        seeded.scans += [scan.id for scan in scans]
        seeded.reports += [report.id for report in reports]
        seeded.deliveries += [delivery.id for delivery in deliveries]


async def clean_up(factory: Factory, seeded: Seeded) -> None:
    """Out of the background runners' way: nothing seeded here may be scanned, generated or sent."""
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(update(Scan).where(Scan.id.in_(seeded.scans), Scan.status.in_(("queued", "running")))
                              .values(status="cancelled", completed_at=utcnow()))
        await session.execute(update(Report).where(Report.id.in_(seeded.reports),
                                                   Report.status.in_(("pending", "running")))
                              .values(status="failed", error="metrics test row", lease_expires_at=None))
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(seeded.deliveries),
                                                            WebhookDelivery.status == "pending")
                              .values(status="cancelled"))


def delta(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if k[0] in GAUGES and after[k] != before.get(k, 0.0)}


async def test_gauges_count_what_is_in_the_database(client: httpx.AsyncClient, factory: Factory) -> None:
    first = await scrape(client)
    # Every known label value is exported even at zero, so a series never vanishes.
    for name, label, values in [("ronda_scans", "status", ("queued", "running")),
                                ("ronda_alerts_open", "severity", ("critical", "high", "medium", "low", "info")),
                                ("ronda_devices", "compliance_status",
                                 ("compliant", "non_compliant", "needs_review", "unknown")),
                                ("ronda_agents", "state", ("online", "offline")),
                                ("ronda_queue_depth", "queue", ("reports_pending", "reports_running",
                                                                "webhook_deliveries_pending", "scans_queued"))]:
        for value in values:
            assert key(name, **{label: value}) in first, (name, value)
    assert key("ronda_webhooks_failing") in first
    assert not [k for k in first if k[0] == "ronda_metrics_probe_errors_total"]

    seeded = Seeded()
    moved: dict[Key, float] = {}
    try:
        # Background runners of this shared server (or a previous test's leftovers settling) may move
        # a figure between the two scrapes; a real miscount shows on every round, a race on one.
        for _ in range(3):
            before = await scrape(client)
            await seed(factory, seeded)
            moved = delta(before, await scrape(client))
            if moved == EXPECTED:
                break
    finally:
        await clean_up(factory, seeded)
    assert moved == EXPECTED


async def test_figures_fall_back_when_the_work_is_done(client: httpx.AsyncClient, factory: Factory) -> None:
    seeded = Seeded()
    await seed(factory, seeded)
    before = await scrape(client)
    await clean_up(factory, seeded)
    after = await scrape(client)
    for name, labels in [("ronda_scans", {"status": "queued"}), ("ronda_queue_depth", {"queue": "reports_running"}),
                         ("ronda_queue_depth", {"queue": "webhook_deliveries_pending"})]:
        assert after[key(name, **labels)] < before[key(name, **labels)], (name, labels)

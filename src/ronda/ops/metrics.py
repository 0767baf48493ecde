"""Scrape-time gauges for /metrics: work queues, failing webhooks, open alerts, device posture, agents.

core.metrics owns the registry and the HTTP figures but knows no domain; this module, outside core,
registers one probe per gauge on it (`register(app)`, called once by create_app). Each probe is ONE
aggregate query over indexed columns, read when Prometheus scrapes, so the figures are the database's
and agree across every server process. They are operator figures over all tenants (no tenant label:
a series per tenant would grow without bound), so no principal and no `scoped()` is involved.

Known label values are always present (0 when nothing matches), so a series never vanishes and an
alert rule such as `ronda_webhooks_failing > 0` sees the drop back to zero.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import Select, and_, case, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ronda.agents.models import Agent
from ronda.alerts.models import SEVERITIES, Alert
from ronda.core.metrics import Metrics, Probe
from ronda.core.timeutil import utcnow
from ronda.devices.models import Device
from ronda.reports.models import Report
from ronda.scans.models import Scan
from ronda.webhooks.models import Webhook, WebhookDelivery

Samples = dict[tuple[str, ...], float]

SCAN_STATES = ("queued", "running")
COMPLIANCE_STATES = ("compliant", "non_compliant", "needs_review", "unknown")
QUEUES = ("reports_pending", "reports_running", "webhook_deliveries_pending", "scans_queued")


async def _grouped(session: AsyncSession, statement: Select[str, int], known: tuple[str, ...]) -> Samples:
    """(label, count) rows as samples, every known label present (0 when absent)."""
    samples: Samples = {(name,): 0.0 for name in known}
    for label, count in (await session.execute(statement)).all():
        samples[(str(label),)] = float(count)
    return samples


async def scans_by_status(session: AsyncSession) -> Samples:
    statement = (select(Scan.status, func.count()).where(Scan.status.in_(SCAN_STATES))
                 .group_by(Scan.status))
    return await _grouped(session, statement, SCAN_STATES)


async def queue_depths(session: AsyncSession) -> Samples:
    """Every background queue in one round trip: one counted SELECT per queue, joined by UNION ALL."""
    def depth(name: str, status: InstrumentedAttribute[str], value: str) -> Select[str, int]:
        return select(literal(name).label("queue"), func.count().label("n")).where(status == value)

    statement = union_all(depth("reports_pending", Report.status, "pending"),
                          depth("reports_running", Report.status, "running"),
                          depth("webhook_deliveries_pending", WebhookDelivery.status, "pending"),
                          depth("scans_queued", Scan.status, "queued"))
    rows = (await session.execute(statement)).all()
    return {(str(name),): float(count) for name, count in rows}


async def webhooks_failing(session: AsyncSession) -> Samples:
    """Active hooks the dispatcher marked failing (the API's status `failing`; the next success clears it)."""
    count = await session.scalar(select(func.count()).select_from(Webhook).where(
        Webhook.active.is_(True), Webhook.failing_since.is_not(None)))
    return {(): float(count or 0)}


async def alerts_open(session: AsyncSession) -> Samples:
    statement = (select(Alert.severity, func.count()).where(Alert.status == "open")
                 .group_by(Alert.severity))
    return await _grouped(session, statement, SEVERITIES)


async def devices_by_compliance(session: AsyncSession) -> Samples:
    """By the stored evaluation (a tenant's stale_after_days turning old results `unknown` on read is
    not applied here: that would take a per-tenant join for a figure meant to be cheap)."""
    statement = (select(Device.compliance_status, func.count()).group_by(Device.compliance_status))
    return await _grouped(session, statement, COMPLIANCE_STATES)


def agents_by_state(offline_after: int) -> Probe:
    """Enrolled (not revoked) agents, online when a heartbeat came within RONDA_AGENT_OFFLINE_AFTER."""
    async def probe(session: AsyncSession) -> Samples:
        since = utcnow() - timedelta(seconds=offline_after)
        online = and_(Agent.last_heartbeat_at.is_not(None), Agent.last_heartbeat_at > since)
        row = (await session.execute(
            select(func.count(), func.coalesce(func.sum(case((online, 1), else_=0)), 0))
            .select_from(Agent).where(Agent.revoked_at.is_(None))
        )).one()
        total, up = int(row[0]), int(row[1])
        return {("online",): float(up), ("offline",): float(total - up)}

    return probe


def register(app: FastAPI) -> None:
    metrics: Metrics = app.state.metrics
    offline_after: int = app.state.runtime.settings.agent_offline_after
    metrics.add_probe("ronda_scans", "Scans queued or running, by status", ("status",), scans_by_status)
    metrics.add_probe("ronda_queue_depth", "Background work waiting or in progress, by queue", ("queue",),
                      queue_depths)
    metrics.add_probe("ronda_webhooks_failing", "Active webhooks marked failing (until their next successful delivery)",
                      (), webhooks_failing)
    metrics.add_probe("ronda_alerts_open", "Open (unacknowledged) alerts, by severity", ("severity",), alerts_open)
    metrics.add_probe("ronda_devices", "Devices by stored compliance status", ("compliance_status",),
                      devices_by_compliance)
    metrics.add_probe("ronda_agents", "Enrolled agents, by online state", ("state",), agents_by_state(offline_after))

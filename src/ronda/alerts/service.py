"""Alert rules' writes (raise, auto-resolve) and the people's (acknowledge, resolve, list).

Services flush, never commit; `alert.*` events are queued and go out after the commit."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.alerts import repository
from ronda.alerts.models import SEVERITIES, STATUSES, Alert
from ronda.alerts.repository import AlertFilters
from ronda.alerts.schemas import AlertAcknowledge, AlertRead, AlertResolve
from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.errors import AppError
from ronda.core.ids import new_id
from ronda.core.pagination import ListParams
from ronda.core.principal import Principal
from ronda.core.responses import json_response
from ronda.core.timeutil import as_utc, utcnow

SYSTEM = Actor(actor_type="system", actor_email="system")
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Trigger:
    """What a rule wants raised: one alert per (tenant, rule, subject) while it is active."""

    tenant_id: str
    rule: str
    subject: str
    title: str
    severity: str
    source: str
    description: str = ""
    device_id: str | None = None
    device_ip: str | None = None
    site_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None


def to_read(alert: Alert) -> AlertRead:
    return AlertRead.model_validate(alert)


def event_data(alert: Alert) -> dict[str, Any]:
    return {"alert": to_read(alert).model_dump(mode="json")}


# --- list filters ------------------------------------------------------------------------------


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """`since` as an ISO 8601 time (a bare date or no zone means UTC) or a duration back from now:
    `30m`, `24h`, `7d`, `2w`."""
    if value is None or not value.strip():
        return None
    now = now or utcnow()
    match = _DURATION.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise AppError(400, "Invalid request: since: use an ISO 8601 time or a duration such as 24h or 7d",
                       details=[{"field": "since", "location": "query",
                                 "reason": "not an ISO 8601 time or a duration like 24h, 7d"}]) from None
    return as_utc(parsed)


def _choices(name: str, raw: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = tuple(v.strip().lower() for v in raw.split(",") if v.strip())
    unknown = [v for v in values if v not in allowed]
    if unknown:
        reason = f"unknown value {unknown[0]!r}; choose from {', '.join(allowed)}"
        raise AppError(400, f"Invalid request: {name}: {reason}",
                       details=[{"field": name, "location": "query", "reason": reason}])
    return values


def filters(*, severity: str | None, status: str | None, source: str | None, site_id: str | None,
            device_id: str | None, rule: str | None, since: str | None) -> AlertFilters:
    return AlertFilters(
        severity=_choices("severity", severity, SEVERITIES), status=_choices("status", status, STATUSES),
        source=source, site_id=site_id, device_id=device_id, rule=rule, since=parse_since(since),
    )


def list_statement(principal: Principal, params: ListParams, query: AlertFilters) -> Select[Any]:
    return repository.sorted_statement(principal, query, params.search, params.sort)


async def list_alerts(session: AsyncSession, principal: Principal, params: ListParams, query: AlertFilters
                      ) -> Response:
    """The page as Page[AlertRead] JSON, rendered once from plain rows: the same fields, in the same
    order, as to_read() (times in UTC with a Z, as UtcDatetime writes them)."""
    rows, total = await repository.page_rows(session, principal, query, params.search, params.sort, params.skip,
                                             params.limit)
    return json_response({"data": rows, "meta": params.meta(total).model_dump()})


async def get_alert(session: AsyncSession, principal: Principal, alert_id: str) -> AlertRead:
    alert = await repository.get(session, principal, alert_id)
    if alert is None:
        raise AppError(404, "Alert not found")
    return to_read(alert)


# --- people ------------------------------------------------------------------------------------


def _who(principal: Principal) -> str:
    return principal.email or principal.username or principal.actor_id


async def acknowledge(session: AsyncSession, principal: Principal, alert_id: str, body: AlertAcknowledge | None,
                      actor: Actor) -> AlertRead:
    alert = await repository.get(session, principal, alert_id, for_update=True)
    if alert is None:
        raise AppError(404, "Alert not found")
    if alert.status == "resolved":
        raise AppError(409, "Alert is resolved; it cannot be acknowledged")
    if alert.status == "acknowledged":
        raise AppError(409, "Alert is already acknowledged")
    now = utcnow()
    alert.status = "acknowledged"
    alert.acknowledged_at = now
    alert.acknowledged_by = _who(principal)
    alert.acknowledged_by_id = principal.actor_id
    alert.updated_at = now
    await session.flush()
    await audit.record(session, actor, "alert.acknowledged", resource_type="alert", resource_id=alert.id,
                       metadata={"rule": alert.rule, "severity": alert.severity, "title": alert.title,
                                 "note": body.note if body else None})
    events.queue(session, "alert.acknowledged", alert.tenant_id, event_data(alert))
    return to_read(alert)


async def resolve(session: AsyncSession, principal: Principal, alert_id: str, body: AlertResolve | None,
                  actor: Actor) -> AlertRead:
    alert = await repository.get(session, principal, alert_id, for_update=True)
    if alert is None:
        raise AppError(404, "Alert not found")
    if alert.status == "resolved":
        raise AppError(409, "Alert is already resolved")
    _resolve(alert, _who(principal), principal.actor_id, body.resolution_note if body else None)
    await session.flush()
    await audit.record(session, actor, "alert.resolved", resource_type="alert", resource_id=alert.id,
                       metadata={"rule": alert.rule, "severity": alert.severity, "title": alert.title,
                                 "resolution_note": alert.resolution_note})
    events.queue(session, "alert.resolved", alert.tenant_id, event_data(alert))
    return to_read(alert)


def _resolve(alert: Alert, who: str, who_id: str | None, note: str | None) -> None:
    now = utcnow()
    alert.status = "resolved"
    alert.resolved_at = now
    alert.resolved_by = who
    alert.resolved_by_id = who_id
    alert.resolution_note = note
    alert.updated_at = now


# --- rules -------------------------------------------------------------------------------------


async def raise_alert(session: AsyncSession, trigger: Trigger) -> Alert | None:
    """Open an alert for the trigger, or count a repeat on the active one. Returns the new alert
    (audited, `alert.created` queued), or None for a repeat."""
    now = utcnow()
    values = {
        "id": new_id("alert"), "tenant_id": trigger.tenant_id, "rule": trigger.rule, "subject": trigger.subject[:200],
        "title": trigger.title[:300], "description": trigger.description, "severity": trigger.severity,
        "status": "open", "source": trigger.source, "device_id": trigger.device_id, "device_ip": trigger.device_ip,
        "site_id": trigger.site_id, "details": dict(trigger.metadata), "event_id": trigger.event_id,
        "occurrence_count": 1, "first_seen_at": now, "last_seen_at": now, "created_at": now, "updated_at": now,
    }
    alert_id, created = await repository.upsert_active(session, values, now)
    if not created:
        return None
    alert = await repository.get(session, trigger.tenant_id, alert_id)
    if alert is None:  # pragma: no cover - the row was written by this transaction
        return None
    await audit.record(session, SYSTEM.but(tenant_id=trigger.tenant_id), "alert.created", resource_type="alert",
                       resource_id=alert.id, metadata={"rule": alert.rule, "severity": alert.severity,
                                                      "title": alert.title, "subject": alert.subject})
    events.queue(session, "alert.created", alert.tenant_id, event_data(alert))
    return alert


async def auto_resolve(session: AsyncSession, tenant_id: str, rule: str, subject: str, note: str) -> Alert | None:
    """Resolve the active alert of (rule, subject) because its cause went away (by `system`)."""
    alert = await repository.active_for(session, tenant_id, rule, subject)
    if alert is None:
        return None
    _resolve(alert, "system", None, note)
    await session.flush()
    await audit.record(session, SYSTEM.but(tenant_id=tenant_id), "alert.resolved", resource_type="alert",
                       resource_id=alert.id, metadata={"rule": rule, "automatic": True, "resolution_note": note})
    events.queue(session, "alert.resolved", tenant_id, event_data(alert))
    return alert

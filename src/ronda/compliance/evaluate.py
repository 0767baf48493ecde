"""Evaluate a framework for a tenant over a period: every evidence query once, then each control."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.compliance.catalogue import framework as load_framework
from ronda.compliance.context import EvidenceContext
from ronda.compliance.registry import EVIDENCE
from ronda.compliance.types import MAX_EXCEPTIONS, ControlResult, Evidence, FrameworkResult, combine
from ronda.core.timeutil import utcnow
from ronda.devices.posture import policy_of
from ronda.tenants.models import Tenant

REPORT_WORK_MEM = "64MB"


async def evaluate(
    session: AsyncSession, tenant_id: str, framework_id: str, start: date, end: date,
    *, now: datetime | None = None, max_exceptions: int = MAX_EXCEPTIONS,
) -> FrameworkResult:
    """Per control pass | partial | fail | not_applicable over [start, end] (whole days, end included)."""
    catalogue = load_framework(framework_id)
    now = now or utcnow()
    policy = policy_of(await session.get(Tenant, tenant_id))
    ctx = EvidenceContext(session, tenant_id, start, end, now, policy, max_exceptions)
    keys = list(dict.fromkeys(key for control in catalogue.controls for key in control.evidence))
    evidence: dict[str, Evidence] = {}
    if session.get_bind().dialect.name == "postgresql":
        # The posture history is sorted per device: let it sort in memory (this transaction only).
        await session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    for key in keys:  # one session: the queries run one after another
        evidence[key] = await EVIDENCE[key](ctx)
    controls = []
    for control in catalogue.controls:
        items = [evidence[key] for key in control.evidence]
        controls.append(ControlResult(
            id=control.id, title=control.title, theme=control.theme, description=control.description,
            result=combine([item.result for item in items]), evidence=items, note=control.note,
        ))
    return FrameworkResult(
        framework=catalogue.id, framework_name=catalogue.name, version=catalogue.version, tenant_id=tenant_id,
        start=start, end=end, evaluated_at=now, controls=controls, evidence=evidence,
    )

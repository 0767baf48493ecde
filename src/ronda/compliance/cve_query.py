"""Critical and high CVE matches on devices during the period (used only when the CVE tables exist)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from ronda.compliance.context import EvidenceContext
from ronda.compliance.evidence_network import optional_model
from ronda.compliance.types import Evidence, ExceptionItem, share_result
from ronda.core.tenancy import tenant_clause
from ronda.devices.models import Device

SERIOUS = ("critical", "high")


async def matched_evidence(ctx: EvidenceContext, match: Any) -> Evidence:
    record = optional_model("ronda.cve.models", "CveRecord")
    if record is not None and not await ctx.session.scalar(select(record.id).limit(1)):
        # Without an imported CVE feed, "no matches" proves nothing.
        return Evidence(key="vulnerabilities", title="No open critical or high vulnerabilities",
                        source="CVE matches", result="not_applicable", passed=0, total=0, unit="devices",
                        note="No CVE data has been imported (ronda cve import), so devices cannot be matched.")
    d = ctx.dialect
    end, start = d.moment(ctx.end), d.moment(ctx.start)
    devices = int(await ctx.session.scalar(select(func.count()).select_from(Device).where(
        tenant_clause(Device, ctx.tenant_id), Device.first_seen < end, Device.last_seen >= start)) or 0)
    serious = and_(tenant_clause(match, ctx.tenant_id), match.first_seen < end, match.last_seen >= start)
    statement = select(match.device_id).where(serious)
    severity: Any = None
    if record is not None:
        severity = func.lower(func.coalesce(record.severity, ""))
        statement = statement.join(record, record.id == match.cve_id).where(severity.in_(SERIOUS))
    flagged_ids = statement.subquery()
    flagged, matches = (await ctx.session.execute(
        select(func.count(func.distinct(flagged_ids.c.device_id)), func.count()))).one()
    columns: list[Any] = [match.device_id, func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id),
                          match.cve_id, match.package, match.first_seen]
    listing = select(*columns).join(Device, Device.id == match.device_id).where(serious)
    if record is not None:
        listing = listing.join(record, record.id == match.cve_id).where(severity.in_(SERIOUS)).add_columns(severity)
    rows = (await ctx.session.execute(
        listing.order_by(match.first_seen, match.device_id).limit(ctx.max_exceptions))).all()
    items = [ExceptionItem("device", row[0], str(row[1]),
                           f"{row[2]}" + (f" ({row[5]})" if len(row) > 5 else "") + (f" in {row[3]}" if row[3] else ""),
                           row[4]) for row in rows]
    flagged, matches = int(flagged), int(matches)
    return Evidence(
        key="vulnerabilities", title="No open critical or high vulnerabilities", source="CVE matches",
        result=share_result(devices - flagged, devices) if devices else "not_applicable",
        passed=max(devices - flagged, 0), total=devices, unit="devices", exceptions=items, exceptions_total=matches,
        details={"devices_flagged": flagged, "serious_matches": matches},
        note="Devices seen in the period without a critical or high CVE match on their software or services.",
    )

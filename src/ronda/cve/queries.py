"""Read queries behind the CVE endpoints. CVE records are global; every query of matches (tenant
data) goes through core.tenancy.scoped()."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, and_, distinct, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.pagination import ListParams, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.cve.models import CveCpe, CveImport, CveMatch, CveRecord
from ronda.cve.repository import chunks
from ronda.devices.models import Device

DEVICES_PER_CVE = 500


@dataclass(frozen=True, slots=True)
class CveFilters:
    severity: str | None = None
    cvss_min: float | None = None
    site_id: str | None = None
    device_id: str | None = None
    vendor: str | None = None
    product: str | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _text_clause(query: str) -> ColumnElement[bool]:
    """A CVE id (or its start) matches ids; anything else searches the description."""
    if query.upper().startswith("CVE-"):
        return CveRecord.id.like(query.upper().replace("%", "").replace("_", "\\_") + "%", escape="\\")
    return func.lower(CveRecord.description).like(_like(query), escape="\\")


def _record_filters(statement: Select[Any], filters: CveFilters, query: str | None) -> Select[Any]:
    if filters.severity:
        statement = statement.where(CveRecord.severity == filters.severity)
    if filters.cvss_min is not None:
        statement = statement.where(CveRecord.cvss_score >= filters.cvss_min)
    if query:
        statement = statement.where(_text_clause(query))
    if filters.vendor or filters.product:
        conditions = [CveCpe.cve_id == CveRecord.id]
        if filters.vendor:
            conditions.append(CveCpe.vendor == filters.vendor.lower())
        if filters.product:
            conditions.append(CveCpe.product == filters.product.lower())
        statement = statement.where(exists(select(CveCpe.id).where(and_(*conditions))))
    return statement


SORTS: dict[str, Any] = {"cvss_score": CveRecord.cvss_score, "published": CveRecord.published,
                         "last_modified": CveRecord.last_modified, "cve_id": CveRecord.id}


async def search(session: AsyncSession, params: ListParams, filters: CveFilters, query: str | None
                 ) -> tuple[list[CveRecord], int]:
    statement = _record_filters(select(CveRecord), filters, query)
    total = int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)
    statement = apply_sort(statement, params.sort, SORTS, [CveRecord.published.desc().nulls_last(),
                                                          CveRecord.id.desc()])
    rows = (await session.scalars(statement.offset(params.skip).limit(params.limit))).all()
    return list(rows), total


async def record(session: AsyncSession, cve_id: str) -> CveRecord | None:
    found: CveRecord | None = await session.get(CveRecord, cve_id)
    return found


async def cpe_ranges(session: AsyncSession, cve_id: str) -> list[CveCpe]:
    return list((await session.scalars(select(CveCpe).where(CveCpe.cve_id == cve_id).order_by(CveCpe.id))).all())


# --- the tenant's matches --------------------------------------------------------------------------


def _matched(principal: Principal, filters: CveFilters, query: str | None) -> Select[Any]:
    """The tenant's matches joined to their CVE (and device, for the site filter), filtered."""
    statement = scoped(select(CveMatch.cve_id), CveMatch, principal).join(CveRecord, CveRecord.id == CveMatch.cve_id)
    if filters.device_id:
        statement = statement.where(CveMatch.device_id == filters.device_id)
    if filters.site_id:
        statement = statement.join(Device, Device.id == CveMatch.device_id).where(Device.site_id == filters.site_id)
    return _record_filters(statement, filters, query)


async def affected(session: AsyncSession, principal: Principal, params: ListParams, filters: CveFilters,
                   query: str | None) -> tuple[list[CveRecord], int]:
    """One page of the CVEs matched in the tenant, worst first."""
    base = _matched(principal, filters, query)
    total = int(await session.scalar(select(func.count()).select_from(base.group_by(CveMatch.cve_id).subquery()))
                or 0)
    ids = base.group_by(CveMatch.cve_id).with_only_columns(CveMatch.cve_id, func.max(CveRecord.cvss_score))
    ordered = ids.order_by(func.max(CveRecord.cvss_score).desc().nulls_last(), CveMatch.cve_id.desc())
    page = [row[0] for row in (await session.execute(ordered.offset(params.skip).limit(params.limit))).all()]
    if not page:
        return [], total
    records = {r.id: r for r in (await session.scalars(select(CveRecord).where(CveRecord.id.in_(page)))).all()}
    return [records[cve_id] for cve_id in page if cve_id in records], total


async def affected_devices(
    session: AsyncSession, principal: Principal, cve_ids: Sequence[str], filters: CveFilters | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The tenant's devices matching each CVE (at most DEVICES_PER_CVE each) and how many there are."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts: dict[str, int] = {}
    for part in chunks(list(cve_ids)):
        columns = cast(Select[Any], select(
            CveMatch.cve_id, CveMatch.device_id, Device.ip, Device.hostname, Device.device_name, Device.site_id,
            CveMatch.package, CveMatch.port, CveMatch.matched_version, CveMatch.cpe, CveMatch.source,
            CveMatch.first_seen))
        statement = scoped(columns, CveMatch, principal).join(Device, Device.id == CveMatch.device_id).where(
            CveMatch.cve_id.in_(part))
        if filters is not None and filters.device_id:
            statement = statement.where(CveMatch.device_id == filters.device_id)
        if filters is not None and filters.site_id:
            statement = statement.where(Device.site_id == filters.site_id)
        rows = await session.execute(statement.order_by(CveMatch.cve_id, CveMatch.first_seen, CveMatch.id))
        for row in rows:
            counts[row.cve_id] = counts.get(row.cve_id, 0) + 1
            if len(found[row.cve_id]) < DEVICES_PER_CVE:
                found[row.cve_id].append({
                    "device_id": row.device_id, "ip": row.ip, "hostname": row.hostname,
                    "device_name": row.device_name, "site_id": row.site_id, "matched_service": row.package,
                    "matched_port": row.port, "matched_version": row.matched_version, "cpe": row.cpe,
                    "source": row.source, "first_seen": row.first_seen,
                })
    return found, counts


async def stats(session: AsyncSession, principal: Principal) -> dict[str, Any]:
    pairs = cast(Select[Any], select(CveMatch.cve_id, CveRecord.severity))
    base = scoped(pairs, CveMatch, principal).join(CveRecord, CveRecord.id == CveMatch.cve_id)
    by_severity = dict.fromkeys(("critical", "high", "medium", "low"), 0)
    distinct_cves = base.group_by(CveMatch.cve_id, CveRecord.severity).subquery()
    rows = await session.execute(select(distinct_cves.c.severity, func.count()).group_by(distinct_cves.c.severity))
    total_matched = 0
    for severity, count in rows:
        total_matched += int(count)
        if severity in by_severity:
            by_severity[severity] += int(count)
    total_matches = int(await session.scalar(
        scoped(select(func.count()).select_from(CveMatch), CveMatch, principal)) or 0)
    devices = int(await session.scalar(
        scoped(select(func.count(distinct(CveMatch.device_id))), CveMatch, principal)) or 0)
    return {"total_matched": total_matched, "total_matches": total_matches, "by_severity": by_severity,
            "affected_devices": devices}


async def db_counts(session: AsyncSession) -> tuple[int, int]:
    records = int(await session.scalar(select(func.count()).select_from(CveRecord)) or 0)
    ranges = int(await session.scalar(select(func.count()).select_from(CveCpe)) or 0)
    return records, ranges


async def imports(session: AsyncSession, limit: int = 100) -> list[CveImport]:
    statement = select(CveImport).order_by(CveImport.imported_at.desc(), CveImport.id.desc()).limit(limit)
    return list((await session.scalars(statement)).all())


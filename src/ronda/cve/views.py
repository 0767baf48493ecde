"""The read side of the CVE API: builds the response models from queries.py (no SQL here)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.config import Settings
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page
from ronda.core.principal import Principal
from ronda.cve import queries
from ronda.cve.models import CveCpe, CveImport, CveRecord
from ronda.cve.queries import CveFilters
from ronda.cve.schemas import (
    AffectedCve,
    AffectedDevice,
    CpeRange,
    CveDetail,
    CveStats,
    CveSummary,
    DbInfo,
    FeedFile,
    Reference,
    SeverityCounts,
)

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)
# References whose NVD tags make them useful for fixing the problem.
REMEDIATION_TAGS = ("Patch", "Vendor Advisory", "Release Notes", "Mitigation")


def _summary_fields(record: CveRecord) -> dict[str, Any]:
    return {
        "cve_id": record.id, "description": record.description, "cvss_score": record.cvss_score,
        "severity": record.severity, "cvss_v31_score": record.cvss_v31_score,
        "cvss_v40_score": record.cvss_v40_score, "published": record.published,
        "last_modified": record.last_modified,
        "references": [r.get("url") for r in record.references or [] if isinstance(r, dict) and r.get("url")],
    }


def summary(record: CveRecord) -> CveSummary:
    return CveSummary(**_summary_fields(record))


async def search(session: AsyncSession, params: ListParams, filters: CveFilters, query: str | None
                 ) -> Page[CveSummary]:
    rows, total = await queries.search(session, params, filters, query)
    return Page[CveSummary](data=[summary(r) for r in rows], meta=params.meta(total))


async def affected(session: AsyncSession, principal: Principal, params: ListParams, filters: CveFilters,
                   query: str | None) -> Page[AffectedCve]:
    rows, total = await queries.affected(session, principal, params, filters, query)
    devices, counts = await queries.affected_devices(session, principal, [r.id for r in rows], filters)
    data = [
        AffectedCve(**_summary_fields(r), affected_devices=[AffectedDevice(**d) for d in devices.get(r.id, [])],
                    affected_device_count=counts.get(r.id, 0), mitre_techniques=[])
        for r in rows
    ]
    return Page[AffectedCve](data=data, meta=params.meta(total))


def parse_cve_id(cve_id: str) -> str:
    if not CVE_ID.match(cve_id.strip()):
        raise AppError(400, f"Invalid request: '{cve_id[:40]}' is not a CVE id (CVE-YYYY-NNNN)",
                       details=[{"field": "cve_id", "location": "path", "reason": "must look like CVE-2024-6387"}])
    return cve_id.strip().upper()


async def detail(session: AsyncSession, principal: Principal, cve_id: str) -> CveDetail:
    record = await queries.record(session, parse_cve_id(cve_id))
    if record is None:
        raise not_found("CVE")
    ranges = await queries.cpe_ranges(session, record.id)
    devices, counts = await queries.affected_devices(session, principal, [record.id])
    references = [Reference(url=r["url"], source=r.get("source"), tags=list(r.get("tags") or []))
                  for r in record.references or [] if isinstance(r, dict) and r.get("url")]
    return CveDetail(
        **_summary_fields(record),
        source_identifier=record.source_identifier, vuln_status=record.vuln_status,
        cvss_v31_severity=record.cvss_v31_severity, cvss_v31_vector=record.cvss_v31_vector,
        cvss_v40_severity=record.cvss_v40_severity, cvss_v40_vector=record.cvss_v40_vector,
        weaknesses=list(record.weaknesses or []), reference_details=references,
        affected_cpes=[CpeRange(criteria=r.criteria, vendor=r.vendor, product=r.product,
                                version_start_including=r.version_start_including,
                                version_start_excluding=r.version_start_excluding,
                                version_end_including=r.version_end_including,
                                version_end_excluding=r.version_end_excluding) for r in ranges],
        remediation=remediation(ranges, references),
        # NVD carries no ATT&CK mapping; the field is kept for clients of the NetRecon API.
        mitre_techniques=[],
        affected_devices=[AffectedDevice(**d) for d in devices.get(record.id, [])],
        affected_device_count=counts.get(record.id, 0),
    )


def remediation(ranges: list[CveCpe], references: list[Reference]) -> list[str]:
    """Guidance read from the data: the first fixed version of each affected application, then the
    references NVD tags as patches, advisories or release notes."""
    advice: list[str] = []
    for row in ranges:
        name = f"{row.vendor} {row.product}".replace("_", " ")
        if row.part != "a":
            continue
        if row.version_end_excluding:
            line = f"Upgrade {name} to {row.version_end_excluding} or later"
            if row.version_start_including or row.version_start_excluding:
                start = row.version_start_including or row.version_start_excluding
                line += f" (versions from {start} are affected)"
        elif row.version_end_including:
            line = f"Upgrade {name} to a release after {row.version_end_including}"
        elif row.version not in ("*", "-"):
            suffix = row.version_update if row.version_update not in ("*", "-") else ""
            line = f"{name} {row.version}{suffix} is affected: move to a fixed release"
        else:
            continue
        if line not in advice:
            advice.append(line)
    for reference in references:
        if any(tag in REMEDIATION_TAGS for tag in reference.tags):
            line = f"See {reference.url} ({', '.join(t for t in reference.tags if t in REMEDIATION_TAGS)})"
            if line not in advice:
                advice.append(line)
    return advice


async def stats(session: AsyncSession, principal: Principal) -> CveStats:
    counts = await queries.stats(session, principal)
    total, _ = await queries.db_counts(session)
    last = await queries.imports(session, limit=1)
    return CveStats(
        total_matched=counts["total_matched"], total_matches=counts["total_matches"],
        by_severity=SeverityCounts(**counts["by_severity"]), affected_devices=counts["affected_devices"],
        last_db_update=last[0].imported_at if last else None, db_total_cves=total,
    )


def feed_file(row: CveImport) -> FeedFile:
    return FeedFile(file_name=row.file_name, sha256=row.sha256, size=row.size, records=row.records,
                    created=row.created, updated=row.updated, skipped=row.skipped, source=row.source,
                    imported_at=row.imported_at)


async def db_info(session: AsyncSession, settings: Settings, runner: Any) -> DbInfo:
    total, ranges = await queries.db_counts(session)
    files = [feed_file(row) for row in await queries.imports(session)]
    configured = settings.cve_feed_dir is not None
    scheduled = getattr(runner, "next_feed_check", None) if configured and settings.cve_feed_interval > 0 else None
    if scheduled is None and configured and settings.cve_feed_interval > 0 and files:
        scheduled = files[0].imported_at + timedelta(seconds=settings.cve_feed_interval)
    return DbInfo(total_entries=total, total_cpe_ranges=ranges, last_update=files[0].imported_at if files else None,
                  last_import=files[0] if files else None, next_scheduled_update=scheduled,
                  feed_dir_configured=configured, feed_files=files)

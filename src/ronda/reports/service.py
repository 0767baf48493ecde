"""The rules of the reports API: validate the request, queue the report, read and download it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.errors import AppError
from ronda.core.pagination import ListParams, Page, apply_sort, fetch_page
from ronda.core.principal import Principal
from ronda.core.timeutil import utcnow
from ronda.reports import repository
from ronda.reports.models import Report
from ronda.reports.schemas import DateRange, ReportRead

EARLIEST = date(2000, 1, 1)
MAX_DAYS = 1830  # five years: anything longer is a typo, not an audit period
DEFAULT_DAYS = 90
API_PREFIX = "/api/v1"
REQUESTED_EVENT = "report.requested"


def _bad(field: str, reason: str) -> AppError:
    return AppError(400, f"Invalid request: {field}: {reason}",
                    details=[{"field": field, "location": "body", "reason": reason}])


def check_period(period: DateRange | None, today: date) -> tuple[date, date]:
    """The period's first and last day; the default is the 90 days ending today."""
    if period is None:
        return today - timedelta(days=DEFAULT_DAYS - 1), today
    if period.end < period.start:
        raise _bad("date_range.end", "must not be before date_range.start")
    if period.start < EARLIEST:
        raise _bad("date_range.start", f"must be on or after {EARLIEST.isoformat()}")
    if period.end > today + timedelta(days=1):
        raise _bad("date_range.end", "must not be in the future")
    if (period.end - period.start).days + 1 > MAX_DAYS:
        raise _bad("date_range", f"must span at most {MAX_DAYS} days")
    return period.start, period.end


async def request_report(
    session: AsyncSession, principal: Principal, actor: Actor, *, kind: str, fmt: str,
    framework: str | None, period: tuple[date, date] | None, parameters: dict[str, Any],
) -> ReportRead:
    report = Report(
        tenant_id=principal.tenant_id, kind=kind, framework=framework, format=fmt, status="pending",
        period_start=period[0] if period else None, period_end=period[1] if period else None,
        parameters=parameters, requested_by=principal.user_id or None,
        requested_by_name=principal.email or principal.username or None, summary={}, attempts=0,
        created_at=utcnow(),
    )
    session.add(report)
    await session.flush()
    await audit.record(session, actor, REQUESTED_EVENT, resource_type="report", resource_id=report.id, metadata={
        "type": kind, "framework": framework, "format": fmt,
        "start": period[0].isoformat() if period else None, "end": period[1].isoformat() if period else None,
    })
    # Wakes the runners once the transaction has committed (they poll as well).
    events.queue(session, REQUESTED_EVENT, principal.tenant_id, {"report_id": report.id, "type": kind})
    return read(report)


def read(report: Report) -> ReportRead:
    period = (DateRange(start=report.period_start, end=report.period_end)
              if report.period_start and report.period_end else None)
    done = report.status == "completed"
    return ReportRead(
        id=report.id, type=report.kind,  # type: ignore[arg-type]
        framework=report.framework, format=report.format,  # type: ignore[arg-type]
        status=report.status,  # type: ignore[arg-type]
        date_range=period, site_id=(report.parameters or {}).get("site_id"),
        file_name=report.file_name if done else None, content_type=report.content_type if done else None,
        size=report.size_bytes if done else None,
        download_url=f"{API_PREFIX}/reports/{report.id}/download" if done else None,
        requested_by=report.requested_by, requested_by_name=report.requested_by_name,
        summary=dict(report.summary or {}), error=report.error, created_at=report.created_at,
        started_at=report.started_at, completed_at=report.completed_at,
    )


async def list_reports(session: AsyncSession, principal: Principal, params: ListParams, status: str | None,
                       kind: str | None, framework: str | None) -> Page[ReportRead]:
    statement = repository.list_statement(principal, status, kind, framework)
    statement = apply_sort(statement, params.sort, repository.SORT_FIELDS, repository.NEWEST_FIRST)
    rows, total = await fetch_page(session, statement, params)
    return Page[ReportRead](data=[read(row) for row in rows], meta=params.meta(total))


async def get_report(session: AsyncSession, principal: Principal, report_id: str) -> Report:
    report = await repository.get(session, principal, report_id)
    if report is None:
        raise AppError(404, "Report not found")
    return report


@dataclass(frozen=True, slots=True)
class Download:
    path: Path
    file_name: str
    content_type: str


def report_path(data_dir: Path, report: Report) -> Path:
    """Where a report's file lives: RONDA_DATA_DIR/reports/<tenant>/<report id>.<format>."""
    return data_dir / "reports" / report.tenant_id / f"{report.id}.{report.format}"


async def download(session: AsyncSession, principal: Principal, report_id: str, data_dir: Path) -> Download:
    report = await get_report(session, principal, report_id)
    if report.status != "completed":
        raise AppError(409, f"Report is {report.status}, not completed",
                       details=[{"field": "status", "location": "path", "reason": report.status}])
    path = report_path(data_dir, report)
    if not path.is_file():
        raise AppError(404, "Report file not found")
    return Download(path, report.file_name or path.name, report.content_type or "application/octet-stream")

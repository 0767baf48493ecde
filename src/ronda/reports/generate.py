"""Generating one report: gather the data (async SQL), render it off the event loop, store the file."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.compliance.evaluate import evaluate
from ronda.core import events
from ronda.core.db import transaction
from ronda.core.events import EventBus
from ronda.core.timeutil import utcnow
from ronda.reports.documents import ReportMeta, compliance_document
from ronda.reports.models import Report
from ronda.reports.service import report_path
from ronda.tenants.models import Tenant

log = logging.getLogger("ronda.reports")

CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8", "json": "application/json"}


def file_name(report: Report) -> str:
    stem = f"ronda-{report.framework}-compliance" if report.kind == "compliance" else "ronda-network-audit"
    if report.period_start and report.period_end:
        stem += f"-{report.period_start.isoformat()}-to-{report.period_end.isoformat()}"
    else:
        stem += f"-{report.created_at.date().isoformat()}"
    return f"{stem}.{report.format}"


async def build_document(session: AsyncSession, report: Report) -> dict[str, Any]:
    tenant = await session.get(Tenant, report.tenant_id)
    meta = ReportMeta(report.id, report.tenant_id, tenant.name if tenant else report.tenant_id,
                      report.requested_by_name, utcnow(), report.period_start, report.period_end)
    if report.kind == "compliance":
        assert report.framework and report.period_start and report.period_end
        result = await evaluate(session, report.tenant_id, report.framework, report.period_start, report.period_end)
        return compliance_document(result, meta)
    from ronda.reports.network import network_document

    return await network_document(session, meta, (report.parameters or {}).get("site_id"))


def render(document: dict[str, Any], kind: str, fmt: str) -> bytes:
    """CPU-bound: called in a worker thread."""
    from ronda.reports import tabular

    if fmt == "json":
        return tabular.render_json(document)
    if fmt == "csv":
        return tabular.compliance_csv(document) if kind == "compliance" else tabular.network_csv(document)
    if kind == "compliance":
        from ronda.reports.pdf_compliance import render_compliance_pdf

        return render_compliance_pdf(document)
    from ronda.reports.pdf_network import render_network_pdf

    return render_network_pdf(document)


def write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(content)
    os.replace(partial, path)


def summary_of(document: dict[str, Any], kind: str) -> dict[str, Any]:
    summary = dict(document.get("summary", {}))
    if kind == "compliance":
        return {"score": summary.get("score"), "results": summary.get("results"),
                "exceptions": summary.get("exceptions"), "controls": summary.get("controls")}
    return summary


async def generate(sessions: async_sessionmaker[AsyncSession], bus: EventBus | None, data_dir: Path,
                   report_id: str) -> bool:
    """Generate a claimed (running) report; true when it completed. Failures are recorded, not raised."""
    try:
        async with transaction(sessions, write=False) as session:
            report = (await session.scalars(select(Report).where(Report.id == report_id))).one()
            kind, fmt = report.kind, report.format
            document = await build_document(session, report)
            name, path = file_name(report), report_path(data_dir, report)
        content = await asyncio.to_thread(render, document, kind, fmt)
        summary = summary_of(document, kind)
        del document
        await asyncio.to_thread(write_atomically, path, content)
    except Exception as exc:
        log.exception("report %s failed", report_id)
        await _finish(sessions, bus, report_id, None, f"generation failed: {type(exc).__name__}")
        return False
    return await _finish(sessions, bus, report_id, (name, CONTENT_TYPES[fmt], len(content), summary), None)


async def _finish(sessions: async_sessionmaker[AsyncSession], bus: EventBus | None, report_id: str,
                  done: tuple[str, str, int, dict[str, Any]] | None, error: str | None) -> bool:
    async with events.transaction(sessions, bus) as session:
        report = (await session.scalars(select(Report).where(Report.id == report_id))).one()
        if report.status != "running":  # released or recovered meanwhile: nothing to record
            return False
        report.completed_at = utcnow()
        report.lease_expires_at = None
        actor = Actor(actor_type="system", tenant_id=report.tenant_id)
        meta: dict[str, Any] = {"type": report.kind, "framework": report.framework, "format": report.format,
                                "requested_by": report.requested_by}
        if done is None:
            report.status, report.error = "failed", error
            await audit.record(session, actor, "report.failed", resource_type="report", resource_id=report.id,
                               metadata={**meta, "error": error})
            events.queue(session, "report.failed", report.tenant_id, {"report_id": report.id, "error": error})
            return False
        report.file_name, report.content_type, report.size_bytes, report.summary = done
        report.status, report.error = "completed", None
        await audit.record(session, actor, "report.generated", resource_type="report", resource_id=report.id,
                           metadata={**meta, "size": report.size_bytes, "file_name": report.file_name})
        events.queue(session, "report.completed", report.tenant_id, {"report_id": report.id, "type": report.kind,
                                                                     "size": report.size_bytes})
        return True



"""The reports API: 202 -> poll -> download, permissions, bad input, tenants, recovery after a crash."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from ronda.reports.models import Report
from tests.conftest import Factory
from tests.reports.helpers import REPORTS, generate, request, wait
from tests.support import assert_error

SEED_BODY = {"framework": "iso27001", "format": "pdf", "date_range": {"start": "2025-01-01", "end": "2026-01-01"}}


async def test_the_seed_request_is_accepted_polled_and_downloaded(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    accepted = await request(client, admin, "compliance", **SEED_BODY)
    assert accepted["id"].startswith("rpt_")
    assert (accepted["type"], accepted["framework"], accepted["format"]) == ("compliance", "iso27001", "pdf")
    assert accepted["date_range"] == {"start": "2025-01-01", "end": "2026-01-01"}
    assert accepted["download_url"] is None and accepted["size"] is None
    report = await wait(client, admin, accepted["id"])
    assert report["status"] == "completed", report
    assert report["download_url"] == f"{REPORTS}/{accepted['id']}/download"
    assert report["size"] > 1000 and report["completed_at"].endswith("Z")
    assert report["requested_by"] == admin.id and report["summary"]["controls"] == 23
    download = await client.get(report["download_url"], headers=admin.headers)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.content.startswith(b"%PDF-") and len(download.content) == report["size"]
    assert ('filename="ronda-iso27001-compliance-2025-01-01-to-2026-01-01.pdf"'
            in download.headers["content-disposition"])
    listed = (await client.get(REPORTS, headers=admin.headers)).json()
    assert [r["id"] for r in listed["data"]] == [accepted["id"]] and listed["meta"]["total"] == 1
    # Requested and generated are both in the tenant's audit log.
    async with transaction(factory.runtime.sessions, write=False) as session:
        types = (await session.scalars(select(AuditLog.event_type).where(
            AuditLog.tenant_id == admin.tenant_id, AuditLog.resource_id == accepted["id"])
            .order_by(AuditLog.seq))).all()
    assert list(types) == ["report.requested", "report.generated"]


async def test_soc2_json_and_csv_have_the_right_types_and_names(client: httpx.AsyncClient, factory: Factory) -> None:
    analyst = await factory.user("analyst")
    today = datetime.now(UTC).date()
    period = {"start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat()}
    report, download = await generate(client, analyst, "compliance", framework="soc2", format="json",
                                      date_range=period)
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"].endswith(
        f'filename="ronda-soc2-compliance-{period["start"]}-to-{period["end"]}.json"')
    body = orjson.loads(download.content)
    assert body["report"]["framework"] == "soc2" and body["report"]["id"] == report["id"]
    _, csv_download = await generate(client, analyst, "compliance", framework="soc2", format="csv",
                                     date_range=period)
    assert csv_download.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_download.headers["content-disposition"].endswith('.csv"')
    # Without a date_range: the 90 days ending today.
    default = await request(client, analyst, "compliance", framework="iso27001", format="json")
    assert default["date_range"] == {"start": (today - timedelta(days=89)).isoformat(), "end": today.isoformat()}


@pytest.mark.parametrize(("body", "field"), [
    ({"framework": "pci-dss", "format": "pdf"}, "framework"),
    ({"framework": "iso27001", "format": "docx"}, "format"),
    ({"framework": "iso27001", "date_range": {"start": "2026-01-10", "end": "2026-01-01"}}, "date_range.end"),
    ({"framework": "iso27001", "date_range": {"start": "1970-01-01", "end": "2026-01-01"}}, "date_range.start"),
    ({"framework": "iso27001", "date_range": {"start": "2016-01-01", "end": "2026-01-01"}}, "date_range"),
    ({"framework": "iso27001", "date_range": {"start": "2026-01-01", "end": "2999-01-01"}}, "date_range.end"),
    ({"framework": "iso27001", "date_range": {"start": "2026-02-30", "end": "2026-03-01"}}, "date_range.start"),
    ({"framework": "iso27001", "date_range": {"start": "2026-01-01"}}, "date_range.end"),
    ({"framework": "iso27001", "colour": "red"}, "colour"),
    ({}, "framework"),
])
async def test_bad_input_is_a_clean_400_and_writes_nothing(
    client: httpx.AsyncClient, factory: Factory, body: dict[str, object], field: str
) -> None:
    admin = await factory.user("admin")
    error = assert_error(await client.post(f"{REPORTS}/compliance", headers=admin.headers, json=body),
                         400, "BAD_REQUEST")
    assert field in [d["field"] for d in error["error"]["details"]], error
    assert (await client.get(REPORTS, headers=admin.headers)).json()["meta"]["total"] == 0


async def test_network_bad_input(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for body in ({"format": "xlsx"}, {"date_range": {"start": "2026-01-05", "end": "2026-01-01"}}, {"site": "x"}):
        assert_error(await client.post(f"{REPORTS}/network", headers=admin.headers, json=body), 400, "BAD_REQUEST")
    assert_error(await client.get(f"{REPORTS}?status=done", headers=admin.headers), 400, "BAD_REQUEST")


async def test_roles_and_tenants(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    viewer = await factory.user("viewer", tenant_id=admin.tenant_id)
    user = await factory.user("user", tenant_id=admin.tenant_id)
    outsider = await factory.user("admin")
    report = await wait(client, admin, (await request(client, admin, "network", format="json"))["id"])
    for reader in (viewer, user):
        assert (await client.get(f"{REPORTS}/{report['id']}", headers=reader.headers)).status_code == 200
        assert (await client.get(report["download_url"], headers=reader.headers)).status_code == 200
        assert_error(await client.post(f"{REPORTS}/network", headers=reader.headers, json={}), 403, "FORBIDDEN")
    # Another tenant sees nothing of it.
    assert (await client.get(REPORTS, headers=outsider.headers)).json()["meta"]["total"] == 0
    assert_error(await client.get(f"{REPORTS}/{report['id']}", headers=outsider.headers), 404, "NOT_FOUND")
    assert_error(await client.get(report["download_url"], headers=outsider.headers), 404, "NOT_FOUND")
    assert_error(await client.get(f"{REPORTS}/{report['id']}"), 401, "UNAUTHORIZED")


async def test_pagination_and_filters(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    ids = [(await request(client, admin, "network", format="json"))["id"] for _ in range(3)]
    page = (await client.get(f"{REPORTS}?page=1&per_page=2", headers=admin.headers)).json()
    assert page["meta"]["total"] == 3 and [r["id"] for r in page["data"]] == ids[::-1][:2]
    rest = (await client.get(f"{REPORTS}?skip=2&limit=2", headers=admin.headers)).json()
    assert [r["id"] for r in rest["data"]] == ids[:1]
    assert (await client.get(f"{REPORTS}?type=compliance", headers=admin.headers)).json()["meta"]["total"] == 0
    assert_error(await client.get(f"{REPORTS}?limit=1000", headers=admin.headers), 400, "BAD_REQUEST")


async def test_download_before_completion_is_409_and_interrupted_reports_are_recovered(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    now = datetime.now(UTC)
    async with transaction(factory.runtime.sessions) as session:
        # Being generated by a live runner elsewhere (its lease is fresh): left alone.
        busy = Report(tenant_id=admin.tenant_id, kind="network", format="json", status="running", attempts=1,
                      lease_expires_at=now + timedelta(hours=1), started_at=now, parameters={}, summary={})
        # Left running by a process that died: its lease ran out.
        orphan = Report(tenant_id=admin.tenant_id, kind="compliance", framework="soc2", format="json",
                        status="running", attempts=1, lease_expires_at=now - timedelta(minutes=5),
                        period_start=date(2026, 1, 1), period_end=date(2026, 1, 31), parameters={}, summary={})
        # ... and one that already died twice.
        hopeless = Report(tenant_id=admin.tenant_id, kind="network", format="pdf", status="running", attempts=2,
                          lease_expires_at=now - timedelta(minutes=5), parameters={}, summary={})
        session.add_all([busy, orphan, hopeless])
        await session.flush()
        busy_id, orphan_id, hopeless_id = busy.id, orphan.id, hopeless.id
    factory.live.app.state.report_runner.wake()  # recovery also runs on its own every 30 s
    error = assert_error(await client.get(f"{REPORTS}/{busy_id}/download", headers=admin.headers), 409, "CONFLICT")
    assert "running" in error["detail"]
    recovered = await wait(client, admin, orphan_id)
    assert recovered["status"] == "completed", recovered
    failed = await wait(client, admin, hopeless_id)
    assert failed["status"] == "failed" and "interrupted" in failed["error"]
    assert_error(await client.get(f"{REPORTS}/{hopeless_id}/download", headers=admin.headers), 409, "CONFLICT")
    assert (await client.get(f"{REPORTS}/{busy_id}", headers=admin.headers)).json()["status"] == "running"
    async with transaction(factory.runtime.sessions, write=False) as session:
        audited = (await session.execute(select(AuditLog.resource_id, AuditLog.event_type).where(
            AuditLog.tenant_id == admin.tenant_id).order_by(AuditLog.seq))).all()
    assert (orphan_id, "report.requeued") in audited and (orphan_id, "report.generated") in audited
    assert (hopeless_id, "report.failed") in audited
    assert all(resource != busy_id for resource, _ in audited)


async def test_a_generation_that_fails_is_marked_failed_and_audited(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    async with transaction(factory.runtime.sessions) as session:
        # A framework no catalogue has (only possible by writing the row directly).
        broken = Report(tenant_id=admin.tenant_id, kind="compliance", framework="pci", format="pdf", status="pending",
                        attempts=0, period_start=date(2026, 1, 1), period_end=date(2026, 1, 31), parameters={},
                        summary={})
        session.add(broken)
        await session.flush()
        broken_id = broken.id
    factory.live.app.state.report_runner.wake()
    failed = await wait(client, admin, broken_id)
    assert (failed["status"], failed["error"]) == ("failed", "generation failed: KeyError")
    assert failed["download_url"] is None and failed["size"] is None
    assert_error(await client.get(f"{REPORTS}/{broken_id}/download", headers=admin.headers), 409, "CONFLICT")
    async with transaction(factory.runtime.sessions, write=False) as session:
        types = (await session.scalars(select(AuditLog.event_type).where(
            AuditLog.tenant_id == admin.tenant_id, AuditLog.resource_id == broken_id))).all()
    assert list(types) == ["report.failed"]


async def test_a_runner_that_stops_mid_report_hands_it_back(client: httpx.AsyncClient, factory: Factory) -> None:
    from ronda.reports.runner import ReportRunner

    admin = await factory.user("admin")
    now = datetime.now(UTC)
    async with transaction(factory.runtime.sessions) as session:
        claimed = Report(tenant_id=admin.tenant_id, kind="network", format="csv", status="running", attempts=1,
                         lease_expires_at=now + timedelta(minutes=10), started_at=now, parameters={}, summary={})
        session.add(claimed)
        await session.flush()
        claimed_id = claimed.id
    stopping = ReportRunner(factory.runtime.sessions, None, factory.runtime.settings.data_dir)
    stopping.current = claimed_id
    await stopping.hand_back()
    # Back in the queue at once (its lease had ten minutes left), so the live server's runner finishes it.
    factory.live.app.state.report_runner.wake()
    done = await wait(client, admin, claimed_id)
    assert done["status"] == "completed", done
    async with transaction(factory.runtime.sessions, write=False) as session:
        assert (await session.get(Report, claimed_id)).attempts == 1  # type: ignore[union-attr]


async def test_the_seed_paths_under_v1_work_unchanged(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    accepted = await client.post("/v1/reports/compliance", headers=admin.headers, json=SEED_BODY)
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["id"]
    report = await wait(client, admin, report_id)
    assert report["status"] == "completed"
    one = await client.get(f"/v1/reports/{report_id}", headers=admin.headers)
    assert one.status_code == 200 and one.json()["size"] == report["size"]
    listed = await client.get("/v1/reports", headers=admin.headers)
    assert [r["id"] for r in listed.json()["data"]] == [report_id]
    pdf = await client.get(f"/v1/reports/{report_id}/download", headers=admin.headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

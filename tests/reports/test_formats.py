"""What the files say: the PDF's text, the CSV's rows and the JSON's shape, for both report types."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime

import httpx
import orjson

from ronda.reports.tabular import COMPLIANCE_COLUMNS, NETWORK_COLUMNS
from tests.compliance.seeding import Seeder, checks
from tests.conftest import Account, Factory
from tests.reports.helpers import generate, pdf_text

JANUARY = {"start": "2026-01-01", "end": "2026-01-31"}


async def seeded_tenant(factory: Factory) -> tuple[Account, dict[str, str]]:
    """A tenant with a device that fell out of compliance mid-January, a lapsed review and a Telnet port."""
    seed = Seeder(factory.runtime.sessions)
    tenant = await seed.tenant(name=f"Acme Audit {secrets.token_hex(3)}")
    admin = await factory.user("admin", tenant_id=tenant)
    await seed.device(tenant, "fine-laptop", [("2025-12-01", "compliant", checks())])
    half = await seed.device(tenant, "drifting-laptop", [
        ("2025-12-01", "compliant", checks()),
        ("2026-01-16", "non_compliant", checks(disk_encryption="fail")),
    ])
    nas = await seed.device(tenant, "old-nas", [("2025-12-01", "compliant", checks())], ip="10.9.0.5",
                            device_type="nas")
    await seed.port(tenant, nas, 23, "telnet", datetime(2025, 11, 5, tzinfo=UTC), datetime.now(UTC))
    await seed.port(tenant, nas, 80, "http", datetime(2025, 11, 5, tzinfo=UTC), datetime.now(UTC))
    lapsed = await seed.service(tenant, "Lapsed CRM", [("2025-07-01", "2026-01-21")])
    return admin, {"tenant": tenant, "half": half, "nas": nas, "lapsed": lapsed}


async def test_the_iso_pdf_has_cover_summary_controls_exceptions_and_appendix(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin, _ = await seeded_tenant(factory)
    report, download = await generate(client, admin, "compliance", framework="iso27001", format="pdf",
                                      date_range=JANUARY)
    text = pdf_text(download.content)
    # Cover: tenant, framework, period, when and by whom.
    tenant_name = (await client.get("/api/v1/tenants/current", headers=admin.headers)).json()["name"]
    assert tenant_name in text
    assert "ISO/IEC 27001:2022 Compliance Report" in text
    assert "2026-01-01 to 2026-01-31" in text
    assert admin.email in text and report["id"] in text
    # Executive summary with the score.
    assert "Executive summary" in text and "Overall score:" in text
    # The control table: every control of the catalogue, with results.
    for control_id in ("A.5.9", "A.5.15", "A.5.17", "A.5.22", "A.8.1", "A.8.5", "A.8.8", "A.8.15", "A.8.20",
                       "A.8.24"):
        assert control_id in text, control_id
    assert "User endpoint devices" in text and "Partial" in text
    # Exceptions: which devices and services, since when.
    assert "drifting-laptop" in text and "disk not encrypted" in text and "2026-01-16" in text
    assert "Lapsed CRM" in text and "review overdue" in text and "2026-01-21" in text
    assert "old-nas" in text and "Telnet" in text
    # The appendix of evidence.
    assert "Appendix: evidence" in text and "device posture history" in text and "device-days" in text


async def test_the_compliance_json_and_csv_shapes(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, ids = await seeded_tenant(factory)
    _, download = await generate(client, admin, "compliance", framework="soc2", format="json", date_range=JANUARY)
    body = orjson.loads(download.content)
    assert set(body) == {"report", "summary", "controls", "evidence"}
    assert body["report"]["period"] == JANUARY and body["report"]["generated_by"] == admin.email
    assert set(body["summary"]["results"]) == {"pass", "partial", "fail", "not_applicable"}
    assert sum(body["summary"]["results"].values()) == len(body["controls"]) == 9
    cc68 = next(c for c in body["controls"] if c["id"] == "CC6.8")
    assert cc68["result"] == "partial" and cc68["evidence_keys"] == ["antivirus", "device_compliance"]
    posture = body["evidence"]["device_compliance"]
    assert posture["unit"] == "device-days" and posture["total"] == 93.0 and posture["passed"] == 77.0
    assert posture["exceptions"] == [{
        "subject_type": "device", "subject_id": ids["half"], "subject_name": "drifting-laptop",
        "reason": "not compliant with the posture policy", "since": "2026-01-16T00:00:00Z", "until": None}]
    vendor = body["evidence"]["service_reviews"]["exceptions"][0]
    assert (vendor["subject_id"], vendor["since"], vendor["until"]) == (ids["lapsed"], "2026-01-21", None)

    _, csv_download = await generate(client, admin, "compliance", framework="soc2", format="csv",
                                     date_range=JANUARY)
    rows = list(csv.DictReader(io.StringIO(csv_download.text)))
    assert tuple(rows[0]) == COMPLIANCE_COLUMNS
    controls = [r for r in rows if r["record_type"] == "control"]
    assert [r["control_id"] for r in controls] == [c["id"] for c in body["controls"]]
    exceptions = [r for r in rows if r["record_type"] == "exception" and r["evidence_key"] == "device_compliance"]
    assert {(r["control_id"], r["subject_name"], r["since"]) for r in exceptions} == {
        ("CC6.8", "drifting-laptop", "2026-01-16T00:00:00Z")}
    evidence_rows = [r for r in rows if r["record_type"] == "evidence" and r["control_id"] == "CC9.2"]
    assert [r["evidence_key"] for r in evidence_rows] == ["service_reviews", "service_sso_mfa", "supplier_inventory"]


async def test_the_network_report_in_every_format(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, ids = await seeded_tenant(factory)
    _, download = await generate(client, admin, "network", format="json")
    body = orjson.loads(download.content)
    assert body["summary"]["devices"] == 3 and body["summary"]["open_ports"] == 2
    assert body["summary"]["risky_services"] == 1 and body["summary"]["unencrypted_services"] == 2
    [risky] = body["risky_services"]["items"]
    assert (risky["device_id"], risky["port"], risky["risk"]) == (ids["nas"], 23, "critical")
    assert {t["device_type"]: t["devices"] for t in body["by_device_type"]} == {"unknown": 2, "nas": 1}
    assert body["cves"]["present"] in (True, False)

    _, csv_download = await generate(client, admin, "network", format="csv")
    assert csv_download.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(csv_download.text)))
    assert tuple(rows[0]) == NETWORK_COLUMNS and len(rows) == 4  # two devices without ports, two ports
    telnet = next(r for r in rows if r["port"] == "23")
    assert (telnet["device_id"], telnet["risk"], telnet["cleartext"]) == (ids["nas"], "critical", "true")

    report, pdf = await generate(client, admin, "network", format="pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert f'filename="ronda-network-audit-{report["created_at"][:10]}.pdf"' in pdf.headers["content-disposition"]
    text = pdf_text(pdf.content)
    for needle in ("Network Security Audit Report", "Risky exposed services", "Unencrypted services",
                   "Distribution by device type", "Device inventory", "old-nas", "10.9.0.5", "Telnet",
                   "Open ports and services"):
        assert needle in text, needle

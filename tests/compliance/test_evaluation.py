"""Control evaluation against seeded histories, with a fixed clock and a fixed period (January 2026)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import update

from ronda.api_keys.models import ApiKey
from ronda.audit import service as audit
from ronda.audit.models import AuditLog
from ronda.audit.service import Actor
from ronda.compliance.catalogue import framework
from ronda.compliance.evaluate import evaluate
from ronda.compliance.types import FrameworkResult
from ronda.core.db import transaction
from tests.compliance.seeding import Seeder, checks
from tests.conftest import Factory

START, END = date(2026, 1, 1), date(2026, 1, 31)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


async def run(factory: Factory, tenant_id: str, framework_id: str = "iso27001") -> FrameworkResult:
    async with transaction(factory.runtime.sessions, write=False) as session:
        return await evaluate(session, tenant_id, framework_id, START, END, now=NOW)


def control(result: FrameworkResult, control_id: str) -> Any:
    return next(c for c in result.controls if c.id == control_id)


@pytest.fixture
def seed(factory: Factory) -> Seeder:
    return Seeder(factory.runtime.sessions)


async def test_a_device_compliant_for_half_the_period_is_a_partial_with_an_exception_since_then(
    factory: Factory, seed: Seeder
) -> None:
    tenant = await seed.tenant()
    await seed.device(tenant, "steady-laptop", [("2025-12-01", "compliant", checks())])
    half = await seed.device(tenant, "half-laptop", [
        ("2025-12-01", "compliant", checks()),
        ("2026-01-16", "non_compliant", checks(disk_encryption="fail")),
    ])
    result = await run(factory, tenant)
    posture = result.evidence["device_compliance"]
    # 31 + 15 compliant device-days of 62.
    assert posture.total == pytest.approx(62.0)
    assert posture.passed == pytest.approx(46.0)
    assert posture.result == "partial"
    [exception] = posture.exceptions
    assert (exception.subject_id, exception.subject_name) == (half, "half-laptop")
    assert exception.since == datetime(2026, 1, 16, tzinfo=UTC) and exception.until is None
    encryption = result.evidence["disk_encryption"]
    assert encryption.result == "partial" and encryption.exceptions[0].reason == "disk not encrypted"
    assert result.evidence["firewall"].result == "pass" and result.evidence["firewall"].exceptions == []
    # A.8.1 combines posture, encryption and screen lock: two partial, one pass -> partial.
    assert control(result, "A.8.1").result == "partial"
    assert control(result, "A.7.7").result == "pass"


async def test_a_device_that_recovered_has_since_and_until_and_a_stale_one_counts_as_failing(
    factory: Factory, seed: Seeder
) -> None:
    tenant = await seed.tenant()
    await seed.device(tenant, "recovered", [
        ("2025-12-01", "non_compliant", checks(antivirus_enabled="fail")),
        ("2026-01-11", "compliant", checks()),
    ])
    # Compliant, but its last report was on Jan 5: with the default 7 stale days it is unknown from Jan 12.
    stale = await seed.device(tenant, "gone-quiet", [("2025-12-01", "compliant", checks())],
                              last_report=datetime(2026, 1, 5, tzinfo=UTC))
    result = await run(factory, tenant)
    posture = result.evidence["device_compliance"]
    by_name = {e.subject_name: e for e in posture.exceptions}
    recovered = by_name["recovered"]
    assert recovered.since == datetime(2025, 12, 1, tzinfo=UTC)
    assert recovered.until == datetime(2026, 1, 11, tzinfo=UTC)
    quiet = by_name["gone-quiet"]
    assert (quiet.subject_id, quiet.reason, quiet.until) == (stale, "no report (stale)", None)
    assert quiet.since == datetime(2026, 1, 12, tzinfo=UTC)
    # recovered: 21 of 31 days; gone-quiet: 11 of 31 days.
    assert posture.passed == pytest.approx(32.0)
    assert posture.total == pytest.approx(62.0)
    # Ongoing exceptions first.
    assert posture.exceptions[0].subject_name == "gone-quiet"
    assert result.evidence["antivirus"].exceptions[0].subject_name == "gone-quiet"


async def test_a_review_that_lapsed_is_an_exception_since_its_due_date(factory: Factory, seed: Seeder) -> None:
    tenant = await seed.tenant()
    await seed.service(tenant, "On time", [("2025-10-01", "2026-01-10"), ("2026-01-08", "2026-04-08")])
    lapsed = await seed.service(tenant, "Lapsed", [("2025-07-01", "2026-01-21")])
    await seed.service(tenant, "Cured", [("2025-06-01", "2025-12-27"), ("2026-01-06", "2026-07-06")])
    never = await seed.service(tenant, "Never reviewed", [])
    result = await run(factory, tenant)
    reviews = result.evidence["service_reviews"]
    by_name = {e.subject_name: e for e in reviews.exceptions}
    assert set(by_name) == {"Lapsed", "Cured", "Never reviewed"}
    assert (by_name["Lapsed"].subject_id, by_name["Lapsed"].since, by_name["Lapsed"].until) == (
        lapsed, date(2026, 1, 21), None)
    assert by_name["Lapsed"].reason == "review overdue"
    assert (by_name["Cured"].since, by_name["Cured"].until) == (date(2025, 12, 27), date(2026, 1, 6))
    assert (by_name["Never reviewed"].subject_id, by_name["Never reviewed"].reason) == (never, "never reviewed")
    # 4 services x 31 days; overdue: Lapsed 11 (21st..31st), Cured 5 (1st..5th), Never 31.
    assert reviews.total == 124 and reviews.passed == 124 - 47
    assert reviews.result == "partial"
    assert control(result, "A.5.22").result == "partial"
    soc2 = await run(factory, tenant, "soc2")
    assert {e.subject_name for e in soc2.evidence["service_reviews"].exceptions} == set(by_name)


async def test_confidential_services_need_sso_and_mfa(factory: Factory, seed: Seeder) -> None:
    tenant = await seed.tenant()
    await seed.service(tenant, "Vault", [("2026-01-02", "2026-06-01")], data_classification="restricted",
                       sso_enabled=True, mfa_enforced=True, encrypted_at_rest=True, audit_logging_enabled=True)
    weak = await seed.service(tenant, "Payroll", [("2026-01-02", "2026-06-01")], data_classification="confidential",
                              sso_enabled=True, mfa_enforced=False, encrypted_at_rest=True)
    await seed.service(tenant, "Wiki", [("2026-01-02", "2026-06-01")], data_classification="internal")
    result = await run(factory, tenant)
    sso = result.evidence["service_sso_mfa"]
    assert (sso.passed, sso.total, sso.result) == (1, 2, "partial")
    assert [(e.subject_id, e.reason) for e in sso.exceptions] == [(weak, "confidential data, SSO or MFA missing")]
    assert result.evidence["service_encryption"].result == "pass"
    assert result.evidence["service_logging"].exceptions[0].subject_name == "Payroll"


async def test_users_without_mfa_admins_inactive_accounts_and_keys(factory: Factory, seed: Seeder) -> None:
    tenant = await seed.tenant()
    admin = await seed.user(tenant, "admin", mfa=False)
    await seed.user(tenant, "admin", mfa=True)
    await seed.user(tenant, "analyst", mfa=True)
    idle = await seed.user(tenant, "viewer", mfa=True, last_login_at=datetime(2025, 7, 1, tzinfo=UTC))
    await seed.user(tenant, "user", mfa=False, created_at=datetime(2026, 2, 10, tzinfo=UTC))  # after the period
    async with transaction(factory.runtime.sessions) as session:
        session.add(ApiKey(tenant_id=tenant, user_id=admin, name="forever", key_prefix="rk_live_aa",
                           key_hash="a" * 63 + tenant[-1], permissions=[], created_at=datetime(2025, 8, 1, tzinfo=UTC),
                           last_used_at=datetime(2026, 1, 30, tzinfo=UTC)))
        session.add(ApiKey(tenant_id=tenant, user_id=admin, name="tidy", key_prefix="rk_live_bb",
                           key_hash="b" * 63 + tenant[-1], permissions=[], created_at=datetime(2025, 12, 1, tzinfo=UTC),
                           expires_at=datetime(2026, 6, 1, tzinfo=UTC), last_used_at=datetime(2026, 1, 30, tzinfo=UTC)))
        # Turning MFA off is remembered as the exception's start.
        await audit.record(session, Actor(tenant_id=tenant), "auth.mfa.disabled", resource_type="user",
                           resource_id=admin)
        await session.execute(update(AuditLog).where(AuditLog.tenant_id == tenant).values(
            created_at=datetime(2026, 1, 3, tzinfo=UTC)))
    result = await run(factory, tenant)
    users = result.evidence["users_mfa"]
    assert (users.passed, users.total) == (3, 4)
    assert [e.subject_id for e in users.exceptions] == [admin]
    privileged = result.evidence["privileged_mfa"]
    assert (privileged.passed, privileged.total, privileged.result) == (1, 2, "fail")
    assert privileged.exceptions[0].since == datetime(2026, 1, 3, tzinfo=UTC)
    assert "admin without MFA" in privileged.exceptions[0].reason
    inactive = result.evidence["inactive_accounts"]
    assert [e.subject_id for e in inactive.exceptions] == [idle]
    assert inactive.exceptions[0].since == datetime(2025, 7, 1, tzinfo=UTC)
    keys = result.evidence["api_key_hygiene"]
    assert (keys.passed, keys.total) == (1, 2)
    assert [(e.subject_name, e.reason) for e in keys.exceptions] == [("forever (rk_live_aa)", "never expires")]
    assert control(result, "A.8.5").result in ("partial", "fail")
    assert control(await run(factory, tenant, "soc2"), "CC6.3").result == "partial"


async def test_risky_and_cleartext_ports_seen_in_the_period(factory: Factory, seed: Seeder) -> None:
    tenant = await seed.tenant()
    box = await seed.device(tenant, "old-nas", [("2025-12-01", "compliant", checks())], ip="10.0.0.5")
    web = await seed.device(tenant, "web", [("2025-12-01", "compliant", checks())], ip="10.0.0.6")
    await seed.port(tenant, box, 23, "telnet", datetime(2025, 11, 5, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    await seed.port(tenant, web, 443, "https", datetime(2025, 11, 5, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    # Closed before the period: not evidence for January.
    await seed.port(tenant, web, 3389, "rdp", datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC))
    result = await run(factory, tenant)
    risky = result.evidence["risky_services"]
    assert (risky.passed, risky.total, risky.result) == (1, 2, "partial")
    [exception] = risky.exceptions
    assert exception.subject_id == box and "23/tcp (telnet)" in exception.reason
    assert exception.since == datetime(2025, 11, 5, tzinfo=UTC)
    assert result.evidence["cleartext_services"].exceptions[0].subject_id == box
    assert control(result, "A.8.20").result == "partial"


async def test_the_audit_chain_evidence_fails_once_a_record_is_altered(factory: Factory, seed: Seeder) -> None:
    tenant = await seed.tenant()
    async with transaction(factory.runtime.sessions) as session:
        for index in range(3):
            await audit.record(session, Actor(tenant_id=tenant), "tenant.updated", metadata={"n": index})
    async with transaction(factory.runtime.sessions, write=False) as session:
        fine = await evaluate(session, tenant, "soc2", date(2026, 1, 1), datetime.now(UTC).date())
    assert fine.evidence["audit_chain"].result == "pass"
    assert fine.evidence["audit_activity"].result == "pass" and fine.evidence["audit_activity"].passed == 3
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(update(AuditLog).where(AuditLog.tenant_id == tenant, AuditLog.seq == 2)
                              .values(details={"n": 99}))
    async with transaction(factory.runtime.sessions, write=False) as session:
        broken = await evaluate(session, tenant, "soc2", date(2026, 1, 1), datetime.now(UTC).date())
    chain = broken.evidence["audit_chain"]
    assert chain.result == "fail" and chain.exceptions[0].subject_name == "record #2"
    assert control(broken, "CC7.2").result == "partial"


async def test_an_empty_tenant_is_not_applicable_not_passing(factory: Factory, seed: Seeder) -> None:
    tenant = await seed.tenant()
    result = await run(factory, tenant)
    assert control(result, "A.8.1").result == "not_applicable"
    assert control(result, "A.5.22").result == "not_applicable"
    assert result.evidence["audit_activity"].result == "fail"


def test_the_catalogues_cover_the_controls_ronda_can_evidence() -> None:
    iso = {c.id for c in framework("iso27001").controls}
    assert {"A.5.9", "A.5.15", "A.5.16", "A.5.17", "A.5.18", "A.5.19", "A.5.20", "A.5.21", "A.5.22", "A.5.23",
            "A.8.1", "A.8.5", "A.8.7", "A.8.8", "A.8.9", "A.8.15", "A.8.16", "A.8.20", "A.8.21", "A.8.22",
            "A.8.24"} <= iso
    soc2 = {c.id for c in framework("soc2").controls}
    assert {"CC6.1", "CC6.2", "CC6.3", "CC6.6", "CC6.8", "CC7.1", "CC7.2", "CC9.2"} <= soc2
    with pytest.raises(KeyError):
        framework("pci")


async def test_critical_cve_matches_are_vulnerability_exceptions(factory: Factory, seed: Seeder) -> None:
    import secrets as _secrets

    from ronda.cve.models import CveMatch, CveRecord

    tenant = await seed.tenant()
    patched = await seed.device(tenant, "patched", [("2025-12-01", "compliant", checks())])
    exposed = await seed.device(tenant, "exposed", [("2025-12-01", "compliant", checks())])
    cve_id, minor_id = f"CVE-2099-{_secrets.randbelow(10**6):06d}", f"CVE-2098-{_secrets.randbelow(10**6):06d}"
    async with transaction(factory.runtime.sessions) as session:
        session.add_all([CveRecord(id=cve_id, severity="CRITICAL", cvss_score=9.8),
                         CveRecord(id=minor_id, severity="LOW", cvss_score=2.0)])
        await session.flush()
        for device, cve in ((exposed, cve_id), (patched, minor_id)):
            session.add(CveMatch(tenant_id=tenant, device_id=device, cve_id=cve, source="agent",
                                 cpe="cpe:2.3:a:openbsd:openssh:8.0:*:*:*:*:*:*:*", matched_version="8.0",
                                 package="openssh", first_seen=datetime(2026, 1, 5, tzinfo=UTC),
                                 last_seen=datetime(2026, 2, 1, tzinfo=UTC)))
    result = await run(factory, tenant)
    vulnerable = result.evidence["vulnerabilities"]
    assert (vulnerable.passed, vulnerable.total, vulnerable.result) == (1, 2, "partial")
    [exception] = vulnerable.exceptions
    assert exception.subject_id == exposed and cve_id in exception.reason and "critical" in exception.reason
    assert exception.since == datetime(2026, 1, 5, tzinfo=UTC)


async def test_evidence_never_reaches_into_another_tenant(factory: Factory, seed: Seeder) -> None:
    mine, theirs = await seed.tenant(), await seed.tenant()
    await seed.device(mine, "my-laptop", [("2025-12-01", "compliant", checks())])
    their_box = await seed.device(theirs, "their-box",
                                  [("2025-12-01", "non_compliant", checks(firewall_enabled="fail"))])
    await seed.port(theirs, their_box, 23, "telnet", datetime(2025, 11, 5, tzinfo=UTC),
                    datetime(2026, 2, 1, tzinfo=UTC))
    await seed.user(theirs, "admin", mfa=False)
    await seed.service(theirs, "Their CRM", [])
    result = await run(factory, mine)
    assert result.evidence["device_compliance"].total == pytest.approx(31.0)
    assert result.evidence["device_compliance"].exceptions == []
    assert result.evidence["risky_services"].result == "not_applicable"
    assert result.evidence["privileged_mfa"].result == "not_applicable"
    assert result.evidence["service_reviews"].result == "not_applicable"
    every = [e.subject_id for evidence in result.evidence.values() for e in evidence.exceptions]
    assert their_box not in every

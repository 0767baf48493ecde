"""Posture evaluation: five checks, the tenant's policy, a status and a score.

Pure functions first (they decide), then the two that write: `apply()` records one device's new
result (history row, audit record, event) and `reevaluate_tenant()` re-runs every evaluated device
of a tenant after its policy changed.

Rules (product.md §6):
- each check is pass | fail | unknown; an agent may send true/false, "pass"/"fail"/"unknown" or null;
- the policy's `required_checks` count; `min_os_versions[os_type]` adds a required
  `os_version_minimum` check;
- status: non_compliant if a required check fails, else needs_review if one is unknown, else compliant;
  `unknown` when the last report is older than `stale_after_days` (decided when the device is read);
- score = passed / (passed + failed) * 100 over the required checks, None when none was evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.ids import new_id
from ronda.core.tenancy import scoped
from ronda.core.timeutil import as_utc
from ronda.devices.models import Device, DeviceEvaluation
from ronda.devices.schemas import POSTURE_CHECKS
from ronda.tenants.models import DEFAULT_COMPLIANCE_POLICY, Tenant

OS_VERSION_CHECK = "os_version_minimum"
RESULTS = ("pass", "fail", "unknown")
# Other names agents use for the same facts (Recoger's code calls disk encryption filevault_enabled).
ALIASES: dict[str, tuple[str, ...]] = {
    "disk_encryption": ("filevault_enabled", "bitlocker_enabled", "disk_encrypted"),
    "firewall_enabled": ("firewall",),
    "screen_lock_enabled": ("screen_lock",),
    "os_up_to_date": ("updates_installed",),
    "antivirus_enabled": ("antivirus",),
}
COMPLIANCE_EVENT = "device.compliance_changed"
_PARTS = re.compile(r"[0-9]+|[A-Za-z]+")


@dataclass(frozen=True, slots=True)
class Policy:
    required_checks: tuple[str, ...]
    stale_after_days: int
    min_os_versions: Mapping[str, str]

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Policy:
        merged = {**DEFAULT_COMPLIANCE_POLICY, **(raw or {})}
        required = tuple(c for c in POSTURE_CHECKS if c in set(merged.get("required_checks") or ()))
        minimums = {str(k).lower(): str(v) for k, v in (merged.get("min_os_versions") or {}).items() if v}
        return cls(required, int(merged.get("stale_after_days") or 7), minimums)


def policy_of(tenant: Tenant | None) -> Policy:
    return Policy.of(tenant.compliance_policy if tenant is not None else None)


@dataclass(frozen=True, slots=True)
class Evaluation:
    status: str
    score: float | None
    checks: dict[str, str]


# --- checks ------------------------------------------------------------------------------------


def check_result(value: Any) -> str:
    """true/"pass" -> pass, false/"fail" -> fail; anything else (null, "unknown") -> unknown."""
    if value is True:
        return "pass"
    if value is False:
        return "fail"
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in RESULTS:
            return lowered
    return "unknown"


def checks_from_security(security: Mapping[str, Any] | None) -> dict[str, str]:
    """The five checks from a report's security section (an absent check is unknown)."""
    section = security or {}
    out: dict[str, str] = {}
    for check in POSTURE_CHECKS:
        value = section.get(check)
        if value is None:
            value = next((section[alias] for alias in ALIASES.get(check, ()) if section.get(alias) is not None), None)
        out[check] = check_result(value)
    return out


def base_checks(stored: Mapping[str, Any] | None) -> dict[str, str]:
    """The five policy-independent checks kept on the device from its last report."""
    stored = stored or {}
    return {check: check_result(stored.get(check)) for check in POSTURE_CHECKS}


# --- versions ----------------------------------------------------------------------------------


def _version_parts(version: str) -> list[int | str]:
    """Runs of digits (as numbers) and of letters, from the first number on ("Ubuntu 24.04" -> [24, 4])."""
    parts: list[int | str] = [int(part) if part.isdigit() else part.lower() for part in _PARTS.findall(version)]
    first = next((i for i, part in enumerate(parts) if isinstance(part, int)), len(parts))
    return parts[first:]


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1. Numeric parts compare as numbers ("10.0.19045" > "10.0.9200"), a missing
    numeric part counts as 0 ("14.2" == "14.2.0" < "14.2.1"), and a trailing word marks a
    pre-release ("1.0rc1" < "1.0"). Letters sort below numbers at the same position."""
    a, b = _version_parts(left), _version_parts(right)
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == y:
            continue
        if x is None:
            return 1 if isinstance(y, str) else (0 if y == 0 and _rest_is_zero(b, index) else -1)
        if y is None:
            return -1 if isinstance(x, str) else (0 if x == 0 and _rest_is_zero(a, index) else 1)
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, str) and isinstance(y, str):
            return -1 if x < y else 1
        return -1 if isinstance(x, str) else 1
    return 0


def _rest_is_zero(parts: Sequence[int | str], start: int) -> bool:
    return all(part == 0 for part in parts[start:])


def os_version_result(os_type: str | None, os_version: str | None, minimums: Mapping[str, str]) -> str | None:
    """pass/fail/unknown against the policy's minimum for this os_type; None when it sets none."""
    if not os_type:
        return None
    minimum = minimums.get(os_type.strip().lower())
    if minimum is None:
        return None
    if not os_version or not any(ch.isdigit() for ch in os_version):
        return "unknown"
    return "pass" if compare_versions(os_version, minimum) >= 0 else "fail"


# --- evaluation --------------------------------------------------------------------------------


def evaluate(checks: Mapping[str, str], policy: Policy, os_type: str | None, os_version: str | None) -> Evaluation:
    """Status and score of the five checks (plus the OS minimum, when set) under the policy."""
    results = {check: check_result(checks.get(check)) for check in POSTURE_CHECKS}
    required = list(policy.required_checks)
    os_result = os_version_result(os_type, os_version, policy.min_os_versions)
    if os_result is not None:
        results[OS_VERSION_CHECK] = os_result
        required.append(OS_VERSION_CHECK)
    outcomes = [results[check] for check in required]
    passed, failed = outcomes.count("pass"), outcomes.count("fail")
    evaluated = passed + failed
    score = round(passed / evaluated * 100, 1) if evaluated else None
    if failed:
        status = "non_compliant"
    elif "unknown" in outcomes:
        status = "needs_review"
    else:
        status = "compliant"
    return Evaluation(status, score, results)


def effective_status(device: Device, stale_before: datetime | None) -> str:
    """The status a device reads with: `unknown` once its last report is older than `stale_before`.
    (A device that never reported was never evaluated: its stored status is `unknown` already.)"""
    reported = as_utc(device.last_report_at)
    if stale_before is not None and reported is not None and reported < stale_before:
        return "unknown"
    return device.compliance_status or "unknown"


async def stale_before(session: AsyncSession, tenant_id: str, now: datetime) -> datetime:
    """The moment before which a report is stale under the tenant's policy. The tenant is usually
    in the session already (the authenticator loads it), so this rarely costs a query."""
    policy = policy_of(await session.get(Tenant, tenant_id))
    return now - timedelta(days=policy.stale_after_days)


def status_clause(status: str, stale: datetime | None) -> ColumnElement[bool]:
    """effective_status() as SQL, for the compliance_status filter."""
    if stale is None:
        return Device.compliance_status == status
    if status == "unknown":
        return or_(Device.compliance_status == "unknown", Device.last_report_at < stale)
    return and_(Device.compliance_status == status,
                or_(Device.last_report_at.is_(None), Device.last_report_at >= stale))


def changed(device: Device, result: Evaluation) -> bool:
    return (
        device.compliance_status != result.status
        or device.compliance_score != result.score
        or dict(device.compliance_checks or {}) != result.checks
    )


# --- writes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """A device's result before a change, for the audit record and the event."""

    old_status: str
    old_score: float | None


def set_result(device: Device, result: Evaluation, now: datetime) -> Change | None:
    """Put the result on the device object (no SQL); the previous result when it changed."""
    device.evaluated_at = now
    if not changed(device, result):
        return None
    change = Change(device.compliance_status, device.compliance_score)
    device.compliance_status = result.status
    device.compliance_score = result.score
    device.compliance_checks = dict(result.checks)
    return change


def history_row(device: Device, now: datetime) -> DeviceEvaluation:
    """The evaluation history entry for the device's current result."""
    return DeviceEvaluation(
        id=new_id("eval"), tenant_id=device.tenant_id, device_id=device.id, status=device.compliance_status,
        score=device.compliance_score, checks=dict(device.compliance_checks or {}), evaluated_at=now,
    )


def record(session: AsyncSession, device: Device, result: Evaluation, now: datetime) -> Change | None:
    """Store the result on an existing device (no SQL until the next flush); a changed result adds a
    history row."""
    change = set_result(device, result, now)
    if change is not None:
        session.add(history_row(device, now))
    return change


async def announce(session: AsyncSession, device: Device, change: Change | None, actor: Actor) -> None:
    """A changed status is audited and published as `device.compliance_changed` (delivered after commit)."""
    if change is None or change.old_status == device.compliance_status:
        return
    checks = dict(device.compliance_checks or {})
    await audit.record(session, actor, COMPLIANCE_EVENT, resource_type="device", resource_id=device.id,
                       metadata={"old": change.old_status, "new": device.compliance_status,
                                 "score": device.compliance_score, "checks": checks}, tenant_id=device.tenant_id)
    events.queue(session, COMPLIANCE_EVENT, device.tenant_id, {
        "device_id": device.id, "old_status": change.old_status, "new_status": device.compliance_status,
        "old_score": change.old_score, "new_score": device.compliance_score, "checks": checks,
    })


async def apply(session: AsyncSession, device: Device, result: Evaluation, now: datetime, actor: Actor) -> bool:
    """record() then announce(); true when the result changed."""
    change = record(session, device, result, now)
    await announce(session, device, change, actor)
    return change is not None


REEVALUATE_BATCH = 500


async def reevaluate_tenant(session: AsyncSession, tenant_id: str, policy: Policy, actor: Actor, now: datetime) -> int:
    """Re-run the evaluation of every device of the tenant that has one, under a new policy.

    Runs in the caller's transaction, in batches by id; its cost grows with the tenant's evaluated
    devices (one UPDATE, one history row and, for a status change, one audit record per changed
    device). Returns how many devices changed.
    """
    changed_count = 0
    last_id = ""
    while True:
        statement = scoped(
            select(Device).where(Device.evaluated_at.is_not(None), Device.id > last_id), Device, tenant_id
        ).order_by(Device.id).limit(REEVALUATE_BATCH)
        batch = list((await session.scalars(statement)).all())
        if not batch:
            return changed_count
        for device in batch:
            result = evaluate(base_checks(device.compliance_checks), policy, device.os_type, device.os_version)
            evaluated_at = device.evaluated_at
            if await apply(session, device, result, now, actor):
                changed_count += 1
            else:
                device.evaluated_at = evaluated_at  # nothing changed: keep when it was last evaluated
        await session.flush()
        for device in batch:
            session.expunge(device)
        last_id = batch[-1].id

"""Posture evaluation: the pure rules, then the policy, staleness, history and events over HTTP."""

from __future__ import annotations

import pytest

from ronda.devices.posture import Policy, check_result, checks_from_security, compare_versions, evaluate

ALL = ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled")


def checks(**results: str) -> dict[str, str]:
    return {name: results.get(name, "pass") for name in ALL}


def policy(required: tuple[str, ...] = ALL, minimums: dict[str, str] | None = None) -> Policy:
    return Policy.of({"required_checks": list(required), "stale_after_days": 7, "min_os_versions": minimums or {}})


@pytest.mark.parametrize(("value", "result"), [
    (True, "pass"), (False, "fail"), ("pass", "pass"), ("FAIL", "fail"), ("unknown", "unknown"), (None, "unknown"),
    ("yes", "unknown"), (1, "unknown"),
])
def test_check_values(value: object, result: str) -> None:
    assert check_result(value) == result


def test_checks_from_a_security_section() -> None:
    assert checks_from_security({"disk_encryption": True, "firewall_enabled": "fail"}) == {
        "disk_encryption": "pass", "firewall_enabled": "fail", "screen_lock_enabled": "unknown",
        "os_up_to_date": "unknown", "antivirus_enabled": "unknown"}
    # Recoger's agents call disk encryption filevault_enabled, whatever the OS.
    assert checks_from_security({"filevault_enabled": False})["disk_encryption"] == "fail"
    assert checks_from_security(None) == dict.fromkeys(ALL, "unknown")


def test_statuses_and_scores() -> None:
    compliant = evaluate(checks(), policy(), "linux", "6.8")
    assert (compliant.status, compliant.score) == ("compliant", 100.0)
    failing = evaluate(checks(firewall_enabled="fail"), policy(), "linux", "6.8")
    assert (failing.status, failing.score) == ("non_compliant", 80.0)
    # Unknowns do not count in the score, and with no failure the device needs review.
    review = evaluate(checks(os_up_to_date="unknown", antivirus_enabled="unknown"), policy(), "linux", "6.8")
    assert (review.status, review.score) == ("needs_review", 100.0)
    # A failure outweighs unknowns.
    mixed = evaluate(checks(disk_encryption="fail", antivirus_enabled="unknown"), policy(), None, None)
    assert (mixed.status, mixed.score) == ("non_compliant", 75.0)
    nothing = evaluate(dict.fromkeys(ALL, "unknown"), policy(), None, None)
    assert (nothing.status, nothing.score) == ("needs_review", None)
    assert round(evaluate(checks(disk_encryption="fail"), policy(ALL[:3]), None, None).score or 0, 1) == 66.7


def test_the_policy_chooses_the_required_checks() -> None:
    lax = policy(("disk_encryption", "firewall_enabled"))
    result = evaluate(checks(antivirus_enabled="fail", screen_lock_enabled="unknown"), lax, None, None)
    assert (result.status, result.score) == ("compliant", 100.0)
    assert result.checks["antivirus_enabled"] == "fail"  # still shown, just not required
    none_required = evaluate(checks(antivirus_enabled="fail"), policy(()), None, None)
    assert (none_required.status, none_required.score) == ("compliant", None)


@pytest.mark.parametrize(("left", "right", "sign"), [
    ("14.2.1", "14.2", 1), ("14.2", "14.2.0", 0), ("14.2", "14.2.1", -1), ("14.10", "14.9", 1),
    ("10.0.19045", "10.0.19044", 1), ("10.0.19045", "10.0.22000", -1), ("10.0.9200", "10.0.19045", -1),
    ("22.04", "22.04.3", -1), ("1.0rc1", "1.0", -1), ("1.0", "1.0rc1", 1), ("2.0-beta", "2.0-alpha", 1),
    ("Ubuntu 24.04 LTS", "22.04", 1), ("13", "13.0.0", 0), ("6.8.0-45-generic", "6.8.0-45-generic", 0),
])
def test_version_comparison(left: str, right: str, sign: int) -> None:
    assert compare_versions(left, right) == sign
    assert compare_versions(right, left) == -sign


def test_minimum_os_version_is_a_required_check() -> None:
    minimums = {"macos": "14.2", "windows": "10.0.19045"}
    assert evaluate(checks(), policy(minimums=minimums), "macos", "14.2.1").checks["os_version_minimum"] == "pass"
    old = evaluate(checks(), policy(minimums=minimums), "macos", "13.6.3")
    assert (old.status, old.score, old.checks["os_version_minimum"]) == ("non_compliant", 83.3, "fail")
    # os_type compares without case; a missing version is unknown; another OS is not judged.
    assert evaluate(checks(), policy(minimums=minimums), "Windows", "10.0.22631").checks["os_version_minimum"] == "pass"
    assert evaluate(checks(), policy(minimums=minimums), "windows", None).status == "needs_review"
    assert "os_version_minimum" not in evaluate(checks(), policy(minimums=minimums), "linux", "6.8").checks
    # Even with no other required check, the minimum counts.
    only = evaluate(checks(), policy((), minimums), "macos", "12.7")
    assert (only.status, only.score) == ("non_compliant", 0.0)

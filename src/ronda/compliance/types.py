"""What an evaluation produces: evidence items, the exceptions behind them, and per-control results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Result = Literal["pass", "partial", "fail", "not_applicable"]
RESULTS: tuple[Result, ...] = ("pass", "partial", "fail", "not_applicable")
# Evidence lists at most this many exceptions (longest-standing first); exceptions_total counts them all.
MAX_EXCEPTIONS = 500


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    """One device, service, user, key or port that falls short, since when (and until, if it recovered)."""

    subject_type: str
    subject_id: str | None
    subject_name: str
    reason: str
    since: datetime | date | None = None
    until: datetime | date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject_type": self.subject_type, "subject_id": self.subject_id, "subject_name": self.subject_name,
            "reason": self.reason, "since": _iso(self.since), "until": _iso(self.until),
        }


@dataclass(slots=True)
class Evidence:
    """One evidence query's outcome: `passed` of `total` (in `unit`), the result and the exceptions."""

    key: str
    title: str
    source: str
    result: Result
    passed: float
    total: float
    unit: str
    exceptions: list[ExceptionItem] = field(default_factory=list)
    exceptions_total: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def share(self) -> float | None:
        return None if not self.total else self.passed / self.total

    def as_dict(self) -> dict[str, Any]:
        share = self.share
        return {
            "key": self.key, "title": self.title, "source": self.source, "result": self.result,
            "passed": round(self.passed, 2), "total": round(self.total, 2), "unit": self.unit,
            "share": None if share is None else round(share, 4), "note": self.note, "details": self.details,
            "exceptions_total": self.exceptions_total, "exceptions": [e.as_dict() for e in self.exceptions],
        }


@dataclass(slots=True)
class ControlResult:
    id: str
    title: str
    theme: str
    description: str
    result: Result
    evidence: list[Evidence]
    note: str = ""

    @property
    def exceptions_total(self) -> int:
        return sum(e.exceptions_total for e in self.evidence)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "theme": self.theme, "description": self.description,
            "result": self.result, "note": self.note, "evidence_keys": [e.key for e in self.evidence],
            "evidence_passed": round(sum(e.passed for e in self.evidence if e.result != "not_applicable"), 2),
            "evidence_total": round(sum(e.total for e in self.evidence if e.result != "not_applicable"), 2),
            "exceptions_total": self.exceptions_total,
        }


@dataclass(slots=True)
class FrameworkResult:
    framework: str
    framework_name: str
    version: str
    tenant_id: str
    start: date
    end: date
    evaluated_at: datetime
    controls: list[ControlResult]
    evidence: dict[str, Evidence]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {result: 0 for result in RESULTS}
        for control in self.controls:
            out[control.result] += 1
        return out

    @property
    def score(self) -> float | None:
        """Pass counts 1, partial 0.5, fail 0, over the applicable controls, as a percentage."""
        counts = self.counts()
        applicable = counts["pass"] + counts["partial"] + counts["fail"]
        if not applicable:
            return None
        return round((counts["pass"] + 0.5 * counts["partial"]) / applicable * 100, 1)


def combine(results: list[Result]) -> Result:
    """A control's result from its evidence: all pass -> pass, all fail -> fail, otherwise partial;
    evidence that does not apply is left out (all of it not applicable -> not_applicable)."""
    applicable = [r for r in results if r != "not_applicable"]
    if not applicable:
        return "not_applicable"
    if all(r == "pass" for r in applicable):
        return "pass"
    if all(r == "fail" for r in applicable):
        return "fail"
    return "partial"


def share_result(passed: float, total: float, pass_at: float = 0.95, fail_below: float = 0.5) -> Result:
    """pass when at least `pass_at` of the total passed, fail below `fail_below`, otherwise partial."""
    if total <= 0:
        return "not_applicable"
    share = passed / total
    if share >= pass_at:
        return "pass"
    if share < fail_below:
        return "fail"
    return "partial"


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        from ronda.core.timeutil import iso

        return iso(value)
    return value.isoformat()

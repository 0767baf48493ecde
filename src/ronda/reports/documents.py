"""The report as data: one JSON-ready document per report, which every format renders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ronda.compliance.types import FrameworkResult
from ronda.core.timeutil import iso


@dataclass(frozen=True, slots=True)
class ReportMeta:
    """What the cover says: which report, for whom, by whom, when."""

    report_id: str
    tenant_id: str
    tenant_name: str
    requested_by: str | None
    generated_at: datetime
    start: date | None
    end: date | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.report_id, "tenant_id": self.tenant_id, "tenant_name": self.tenant_name,
            "generated_by": self.requested_by, "generated_at": iso(self.generated_at),
            "period": {"start": self.start.isoformat() if self.start else None,
                       "end": self.end.isoformat() if self.end else None},
        }


def compliance_document(result: FrameworkResult, meta: ReportMeta) -> dict[str, Any]:
    return {
        "report": {**meta.as_dict(), "type": "compliance", "framework": result.framework,
                   "framework_name": result.framework_name, "framework_version": result.version},
        "summary": {"score": result.score, "controls": len(result.controls), "results": result.counts(),
                    "exceptions": sum(e.exceptions_total for e in result.evidence.values())},
        "controls": [{**control.as_dict(), "evidence": [
            {"key": e.key, "result": e.result, "passed": round(e.passed, 2), "total": round(e.total, 2),
             "unit": e.unit, "exceptions_total": e.exceptions_total} for e in control.evidence
        ]} for control in result.controls],
        "evidence": {key: evidence.as_dict() for key, evidence in result.evidence.items()},
    }

"""CVE matches, read only if the CVE domain is installed (its tables may not exist yet)."""

from __future__ import annotations

from typing import Any

from ronda.compliance.context import EvidenceContext
from ronda.compliance.types import Evidence

NOT_PRESENT = "CVE data is not present in this installation; vulnerability matching evidence is unavailable."


def cve_match_model() -> Any | None:
    """The model of device-to-CVE matches, if the CVE domain defines one."""
    from ronda.compliance.evidence_network import optional_model

    for module, name in (("ronda.cve.models", "DeviceCve"), ("ronda.cve.models", "CveMatch"),
                         ("ronda.cves.models", "DeviceCve"), ("ronda.cves.models", "CveMatch")):
        model = optional_model(module, name)
        if model is not None and all(hasattr(model, c) for c in ("tenant_id", "device_id", "cve_id")):
            return model
    return None


async def cve_evidence(ctx: EvidenceContext) -> Evidence:
    model = cve_match_model()
    if model is None:
        return Evidence(key="vulnerabilities", title="No open critical or high vulnerabilities", source="CVE matches",
                        result="not_applicable", passed=0, total=0, unit="devices", note=NOT_PRESENT)
    from ronda.compliance.cve_query import matched_evidence

    return await matched_evidence(ctx, model)

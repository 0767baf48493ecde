"""Alert views and the bodies of acknowledge and resolve."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

Severity = Literal["critical", "high", "medium", "low", "info"]
Status = Literal["open", "acknowledged", "resolved"]


class AlertRead(OutputModel):
    id: str
    tenant_id: str
    rule: str = Field(description="The rule that raised it: new_device, new_port, risky_service, non_compliant, "
                                  "agent_offline, review_overdue, cve")
    title: str
    description: str
    severity: Severity
    status: Status
    source: str = Field(description="Where the trigger came from: scan, agent, compliance, cve, services")
    device_id: str | None
    device_ip: str | None
    site_id: str | None
    metadata: dict[str, Any] = Field(validation_alias="details", description="Free-form facts: port, service, ...")
    occurrence_count: int = Field(description="How many times the trigger fired while this alert was active")
    first_seen_at: UtcDatetime
    last_seen_at: UtcDatetime
    created_at: UtcDatetime
    updated_at: UtcDatetime
    acknowledged_at: UtcDatetime | None
    acknowledged_by: str | None = Field(description="Email (or name) of who acknowledged it")
    resolved_at: UtcDatetime | None
    resolved_by: str | None = Field(description="Email (or name) of who resolved it; `system` for an automatic one")
    resolution_note: str | None


class AlertAcknowledge(InputModel):
    note: str | None = Field(None, max_length=2000, description="Optional note, kept in the audit log")


class AlertResolve(InputModel):
    resolution_note: str | None = Field(None, max_length=2000)

"""Device shapes shared by the inventory routes and the report/agent routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ronda.core.schemas import OutputModel, UtcDatetime

DataType = Literal["security", "hardware", "software", "network", "custom"]
DATA_TYPES: tuple[str, ...] = ("security", "hardware", "software", "network", "custom")
CheckResult = Literal["pass", "fail", "unknown"]
ComplianceStatus = Literal["compliant", "non_compliant", "needs_review", "unknown"]
POSTURE_CHECKS: tuple[str, ...] = (
    "disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled",
)


class Compliance(OutputModel):
    status: ComplianceStatus
    score: float | None = Field(description="Passed checks / evaluated checks, as a percentage")
    checks: dict[str, CheckResult]
    evaluated_at: UtcDatetime | None


class DeviceDataRead(OutputModel):
    id: str
    data_type: DataType
    data: dict[str, Any]
    collected_at: UtcDatetime = Field(description="When this content was first reported")
    last_seen_at: UtcDatetime = Field(description="When this content was last confirmed")


class DeviceRead(OutputModel):
    id: str
    tenant_id: str
    device_name: str | None
    hostname: str | None
    serial_number: str | None
    device_type: str
    os_type: str | None
    os_version: str | None
    os_guess: str | None
    ip: str | None
    mac: str | None
    vendor: str | None
    is_online: bool
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    site_id: str | None
    user_id: str | None
    tags: list[str]
    note: str | None
    open_ports: list[int]
    sources: list[str]
    managed: bool
    compliance: Compliance
    device_data: list[DeviceDataRead] | None = Field(
        None, description="Latest data per type, with include_data=true"
    )

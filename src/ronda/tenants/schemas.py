from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime
from ronda.services.policy import ServicePolicyRead, ServicePolicyUpdate

Plan = Literal["startup", "scaleup", "enterprise"]
PostureCheck = Literal[
    "disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled"
]
POSTURE_CHECKS: tuple[str, ...] = (
    "disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled",
)
OsType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
OsVersion = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+){0,3}$", max_length=32)]
TenantName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
LockoutThreshold = Annotated[int, Field(ge=1, le=100, description="Failed logins that lock an account (1-100)")]
LockoutMinutes = Annotated[int, Field(ge=1, le=1440, description="Minutes, 1 to 1440")]
DailyQuota = Annotated[int, Field(ge=1, le=1_000_000_000)]


class CompliancePolicyRead(OutputModel):
    required_checks: list[str] = Field(description="Posture checks a device must pass to be compliant")
    stale_after_days: int = Field(description="A device without a report for this long is `unknown`")
    min_os_versions: dict[str, str] = Field(description="Lowest accepted OS version per os_type")
    services: ServicePolicyRead = Field(description="Which classifications require which service controls")


class CompliancePolicyUpdate(InputModel):
    """Fields given replace the tenant's current values; fields left out stay as they are."""

    required_checks: list[PostureCheck] | None = Field(None, max_length=5)
    stale_after_days: int | None = Field(None, ge=1, le=365)
    min_os_versions: dict[OsType, OsVersion] | None = Field(None, max_length=32)
    services: ServicePolicyUpdate | None = None

    @field_validator("required_checks")
    @classmethod
    def _canonical_order(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        chosen = set(value)
        return [check for check in POSTURE_CHECKS if check in chosen]


class TenantRead(OutputModel):
    id: str
    name: str
    slug: str
    plan: str
    daily_quota: int | None = Field(description="Requests per day; null means the plan's default")
    lockout_threshold: int
    lockout_window_minutes: int
    lockout_duration_minutes: int
    mfa_required: bool
    compliance_policy: CompliancePolicyRead
    is_active: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class TenantSettingsUpdate(InputModel):
    """PATCH /tenants/current. plan and daily_quota may be changed only by a super admin."""

    name: TenantName | None = None
    plan: Plan | None = None
    daily_quota: DailyQuota | None = Field(None, description="null restores the plan's default")
    lockout_threshold: LockoutThreshold | None = None
    lockout_window_minutes: LockoutMinutes | None = None
    lockout_duration_minutes: LockoutMinutes | None = None
    mfa_required: bool | None = None
    compliance_policy: CompliancePolicyUpdate | None = None


class TenantUpdate(TenantSettingsUpdate):
    """PATCH /tenants/{id} (super admin): every setting, and reactivation."""

    is_active: bool | None = None


class TenantCreate(InputModel):
    name: TenantName
    plan: Plan = "startup"
    daily_quota: DailyQuota | None = Field(None, description="Requests per day; omit for the plan's default")


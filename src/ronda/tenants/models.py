from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow
from ronda.services.policy import DEFAULT_SERVICE_POLICY

DEFAULT_COMPLIANCE_POLICY: dict[str, Any] = {
    "required_checks": [
        "disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled",
    ],
    "stale_after_days": 7,
    "min_os_versions": {},
    # Service (SaaS) review rules: see ronda.services.policy.
    "services": DEFAULT_SERVICE_POLICY,
}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tenant"))
    name: Mapped[str] = mapped_column(String(120), unique=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    plan: Mapped[str] = mapped_column(String(20), default="startup")
    daily_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lockout_threshold: Mapped[int] = mapped_column(Integer, default=5)
    lockout_window_minutes: Mapped[int] = mapped_column(Integer, default=15)
    lockout_duration_minutes: Mapped[int] = mapped_column(Integer, default=15)
    mfa_required: Mapped[bool] = mapped_column(Boolean, default=False)
    compliance_policy: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=lambda: dict(DEFAULT_COMPLIANCE_POLICY)
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

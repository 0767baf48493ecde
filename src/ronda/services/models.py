"""The SaaS inventory (services) and their security reviews (questionnaire snapshots over time)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow

CATEGORIES = (
    "development", "communication", "infrastructure", "productivity", "security",
    "finance", "hr", "sales", "marketing", "other",
)
DATA_CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
REVIEW_FREQUENCIES = ("monthly", "quarterly", "semiannual", "annual")
SERVICE_STATUSES = ("compliant", "needs_review", "non_compliant")


class Service(Base):
    """A third-party (SaaS) service the tenant uses, with its current security questionnaire answers.

    `status` is stored as last evaluated; readers recompute it against the clock (a passed
    next_review_date makes it needs_review) and the overdue sweeper writes the flip back.
    """

    __tablename__ = "services"
    __table_args__ = (
        Index("ix_services_tenant_name", "tenant_id", "name"),
        Index("ix_services_tenant_status", "tenant_id", "status"),
        Index("ix_services_tenant_next_review", "tenant_id", "next_review_date"),
        Index("ix_services_owner_tenant", "owner_id", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("svc"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    category: Mapped[str] = mapped_column(String(40), default="other")
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    data_classification: Mapped[str] = mapped_column(String(20), default="internal")
    sso_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_enforced: Mapped[bool] = mapped_column(Boolean, default=False)
    audit_logging_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    encrypted_at_rest: Mapped[bool] = mapped_column(Boolean, default=False)
    data_location: Mapped[str | None] = mapped_column(String(200), nullable=True)
    review_frequency: Mapped[str] = mapped_column(String(20), default="annual")
    status: Mapped[str] = mapped_column(String(20), default="needs_review")
    last_review_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    next_review_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The next_review_date for which `service.review_overdue` was already published (once per period).
    overdue_notified_for: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ServiceReview(Base):
    """One security review: the questionnaire snapshot, findings and the reviewer, kept forever."""

    __tablename__ = "service_reviews"
    __table_args__ = (
        Index("ix_service_reviews_service_date", "service_id", "review_date"),
        Index("ix_service_reviews_tenant_date", "tenant_id", "review_date"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rev"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    reviewer_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    review_date: Mapped[date] = mapped_column(Date)
    sso_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_enforced: Mapped[bool] = mapped_column(Boolean, default=False)
    audit_logging_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    data_classification: Mapped[str] = mapped_column(String(20), default="internal")
    encrypted_at_rest: Mapped[bool] = mapped_column(Boolean, default=False)
    data_location: Mapped[str | None] = mapped_column(String(200), nullable=True)
    findings: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_review_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The service status this review produced (compliant / non_compliant), for evidence over time.
    status: Mapped[str] = mapped_column(String(20), default="compliant")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

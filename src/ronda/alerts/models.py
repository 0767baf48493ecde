"""Alerts, and the marks that make an agent's going offline announced once per silence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow

SEVERITIES = ("critical", "high", "medium", "low", "info")
STATUSES = ("open", "acknowledged", "resolved")
ACTIVE_WHERE = "status <> 'resolved'"


class Alert(Base):
    """One alert: a rule fired for a subject (a device, a port, an agent, a CVE match, ...).

    At most one active (open or acknowledged) alert per tenant, rule and subject: a partial unique
    index enforces it, and a repeat of the trigger bumps `occurrence_count` and `last_seen_at` instead."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_active_subject", "tenant_id", "rule", "subject", unique=True,
              sqlite_where=text(ACTIVE_WHERE), postgresql_where=text(ACTIVE_WHERE)),
        Index("ix_alerts_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_alerts_tenant_status_severity", "tenant_id", "status", "severity"),
        Index("ix_alerts_tenant_site", "tenant_id", "site_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("alert"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="open")
    source: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), nullable=True,
                                                  index=True)
    device_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    event_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    occurrence_count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    acknowledged_by_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    resolved_by_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AgentOfflineMark(Base):
    """The heartbeat after which an agent's silence was announced (`agent.offline`): the sweeper
    announces a silence only when the agent's last heartbeat differs from the one marked here, so
    each online -> offline transition is announced once, by one process."""

    __tablename__ = "agent_offline_marks"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    heartbeat_at: Mapped[datetime]
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)

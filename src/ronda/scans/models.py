"""Scan jobs and the hosts each one found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow


class Scan(Base):
    """One scan job: what was asked, by whom, how far it got, and its difference from the previous one."""

    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_scans_tenant_status", "tenant_id", "status"),
        # The previous completed scan of the same target (the diff).
        Index("ix_scans_tenant_target_completed", "tenant_id", "target_key", "status", "completed_at"),
        # The runner's startup sweep and heartbeat.
        Index("ix_scans_status_runner", "status", "runner_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("scan"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The target as the caller gave it (a string or a list), returned unchanged.
    target: Mapped[Any] = mapped_column(JSON)
    # The exact address set after resolution and exclusions, as collapsed CIDRs: what the worker
    # scans (so a hostname cannot resolve elsewhere later) and what the diff and offline rules compare.
    networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    target_key: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(20))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    requested_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    runner_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Workers and probes hold a lease, renewed by their heartbeats; an expired lease means the
    # scan is taken over (re-queued once) or failed. attempts counts the leases taken.
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_percent: Mapped[float] = mapped_column(Float, default=0.0)
    hosts_total: Mapped[int] = mapped_column(Integer, default=0)
    hosts_found: Mapped[int] = mapped_column(Integer, default=0)
    ports_found: Mapped[int] = mapped_column(Integer, default=0)
    probes_sent: Mapped[int] = mapped_column(Integer, default=0)
    estimated_completion: Mapped[datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    diff: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    previous_scan_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ScanHost(Base):
    """A live host of a completed scan, its ports as JSON: one indexed read returns a /24's result."""

    __tablename__ = "scan_hosts"
    __table_args__ = (Index("ix_scan_hosts_scan_ip", "scan_id", "ip"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("sh"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    device_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ip: Mapped[str] = mapped_column(String(45))
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    os_guess: Mapped[str | None] = mapped_column(String(200), nullable=True)
    os_confidence: Mapped[int] = mapped_column(Integer, default=0)
    device_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    device_type_confidence: Mapped[int] = mapped_column(Integer, default=0)
    ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rtt_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # [{port, protocol, state, service, product, version, banner, cpe: [...], extra: {...}}]
    ports: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow


class Device(Base):
    """One thing on the network or on a desk, however it was learned (agent, scan, manual)."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_tenant_serial", "tenant_id", "serial_number"),
        Index("ix_devices_tenant_mac", "tenant_id", "mac"),
        Index("ix_devices_tenant_site_hostname", "tenant_id", "site_id", "hostname"),
        Index("ix_devices_tenant_last_seen", "tenant_id", "last_seen"),
        Index("ix_devices_tenant_ip", "tenant_id", "ip"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dev"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    device_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    serial_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device_type: Mapped[str] = mapped_column(String(40), default="unknown")
    os_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    os_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    os_guess: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    open_ports: Mapped[list[int]] = mapped_column(JSON, default=list)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    is_online: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_report_at: Mapped[datetime | None] = mapped_column(nullable=True)
    compliance_status: Mapped[str] = mapped_column(String(20), default="unknown")
    compliance_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    compliance_checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeviceData(Base):
    """One version of one kind of device data; a new row only when the content changes."""

    __tablename__ = "device_data"
    __table_args__ = (Index("ix_device_data_device_type_collected", "device_id", "data_type", "collected_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dd"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    data_type: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    digest: Mapped[str] = mapped_column(String(64))
    collected_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class DevicePort(Base):
    """An open port on a device, from a scan or the agent's listening sockets."""

    __tablename__ = "device_ports"
    __table_args__ = (Index("ix_device_ports_device_port", "device_id", "port", "protocol", unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("port"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    port: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(8), default="tcp")
    state: Mapped[str] = mapped_column(String(16), default="open")
    service: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    banner: Mapped[str | None] = mapped_column(Text, nullable=True)
    cpe: Mapped[str | None] = mapped_column(String(300), nullable=True)
    process: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="agent")
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceEvaluation(Base):
    """Posture evaluation history: a row each time a device's result changes."""

    __tablename__ = "device_evaluations"
    __table_args__ = (Index("ix_device_evaluations_device_evaluated", "device_id", "evaluated_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("eval"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)

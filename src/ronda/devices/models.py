from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Computed,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    case,
    column,
    func,
    literal,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, deferred, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnClause

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow


def ip_sort_key(dialect: str, ip: ColumnElement[str] | ColumnClause[str]) -> ColumnElement[str]:
    """How `sort=ip` orders: IPv4 in numeric order ("4" + zero-padded octets, so 10.0.0.9 comes before
    10.0.0.10), everything else (IPv6) as text after it ("6" + address); NULL without an address."""
    if dialect == "postgresql":
        octets = [func.lpad(func.split_part(ip, ".", n), 3, "0") for n in range(1, 5)]
        pg_v4 = ip.op("~")(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")
        return case((pg_v4, literal("4") + octets[0] + octets[1] + octets[2] + octets[3]),
                    else_=literal("6") + ip)
    rest = ip + "."
    parts = []
    for _ in range(4):
        dot = func.instr(rest, ".")
        parts.append(func.substr(rest, 1, dot - 1))
        rest = func.substr(rest, dot + 1)
    is_v4: ColumnElement[bool] = and_(ip.op("GLOB")("[0-9]*.[0-9]*.[0-9]*.[0-9]*"), func.instr(ip, ":") == 0)
    return case((is_v4, literal("4") + func.printf("%03d%03d%03d%03d", *parts)), else_=literal("6") + ip)


class IpSortKey(ColumnElement[str]):
    """ip_sort_key() of the `ip` column, rendered for the dialect at hand (the generated column's SQL)."""

    type = String()
    inherit_cache = True


@compiles(IpSortKey)
def _ip_sort_key_sql(element: IpSortKey, compiler: SQLCompiler, **kw: Any) -> str:
    expression = ip_sort_key(compiler.dialect.name, column("ip", String()))
    return str(compiler.process(expression, **{**kw, "literal_binds": True}))


class Device(Base):
    """One thing on the network or on a desk, however it was learned (agent, scan, manual)."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_tenant_serial", "tenant_id", "serial_number"),
        Index("ix_devices_tenant_mac", "tenant_id", "mac"),
        Index("ix_devices_tenant_site_hostname", "tenant_id", "site_id", "hostname"),
        # The default order (-last_seen, then id) walks this index, deep pages skip inside it, and
        # the is_online and managed filters (and their counts) read what decides them from it alone.
        Index("ix_devices_tenant_last_seen_state", "tenant_id", "last_seen", "id", "managed", "is_online"),
        Index("ix_devices_tenant_ip", "tenant_id", "ip"),
        Index("ix_devices_tenant_ip_key", "tenant_id", "ip_key", "id"),
        # The compliance_status and device_type filters, so their counts read an index instead of
        # every device of the tenant (the last report's age decides a stale status).
        Index("ix_devices_tenant_status", "tenant_id", "compliance_status", "last_report_at"),
        Index("ix_devices_tenant_type", "tenant_id", "device_type"),
        # A user's devices (the user role's list, my-devices, user_id=) newest first, without walking the
        # tenant's; its leading user_id also serves the owner's ON DELETE SET NULL.
        Index("ix_devices_user_tenant_last_seen", "user_id", "tenant_id", "last_seen", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dev"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    device_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    serial_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device_type: Mapped[str] = mapped_column(String(40), default="unknown")
    os_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    os_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    os_guess: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    # sort=ip's key, computed by the database from `ip` (never written, not loaded with the device).
    # Stored: PostgreSQL indexes only stored generated columns (migration 0003 adds it as virtual on SQLite).
    ip_key: Mapped[str | None] = deferred(
        mapped_column(String(), Computed(IpSortKey(), persisted=True), nullable=True)
    )
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
    # The data the last report carried: {data_type: [device_data id, digest]}. An unchanged check-in
    # compares digests against it and confirms those rows by its last_report_at alone (see
    # data_last_seen); NULL until the first report after migration 0011.
    live_data: Mapped[dict[str, list[str]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def data_last_seen(row_id: str, data_type: str, row_last_seen: datetime, live_data: dict[str, list[str]] | None,
                   last_report_at: datetime | None) -> datetime:
    """When a data version was last confirmed: a version the device's last report carried was
    confirmed by that report (its row is brought up to date only when it stops being current)."""
    live = (live_data or {}).get(data_type)
    if live and live[0] == row_id and last_report_at is not None and last_report_at > row_last_seen:
        return last_report_at
    return row_last_seen


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


class DeviceCount(Base):
    """How many devices each tenant has: the exact `meta.total` of the unfiltered list, read by key.

    Kept by triggers on `devices` (migration 0003), in the transaction of every insert and delete
    whatever writes it (reports, enrolment, manual entry, bulk loads), so it is exact across processes.
    """

    __tablename__ = "device_counts"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    total: Mapped[int] = mapped_column(Integer, default=0)

"""CVE tables: the imported NVD records and their CPE match rows (global, not tenant data), each
tenant's device matches, the import log and a little shared state (migration 0008)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ronda.core.db import Base
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow


class CveRecord(Base):
    """One CVE as NVD publishes it (English description, CVSS v3.1/v4.0, dates, references)."""

    __tablename__ = "cve_records"
    __table_args__ = (
        Index("ix_cve_records_published", "published"),
        Index("ix_cve_records_severity_score", "severity", "cvss_score"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_identifier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    vuln_status: Mapped[str | None] = mapped_column(String(40), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # The score and severity lists and filters use: v3.1, else v4.0, else v3.0, else v2 (Primary first).
    cvss_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    severity: Mapped[str | None] = mapped_column(String(10), nullable=True)
    cvss_v31_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    cvss_v31_severity: Mapped[str | None] = mapped_column(String(10), nullable=True)
    cvss_v31_vector: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cvss_v40_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    cvss_v40_severity: Mapped[str | None] = mapped_column(String(10), nullable=True)
    cvss_v40_vector: Mapped[str | None] = mapped_column(String(400), nullable=True)
    published: Mapped[datetime | None] = mapped_column(nullable=True)
    last_modified: Mapped[datetime | None] = mapped_column(nullable=True)
    references: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    weaknesses: Mapped[list[str]] = mapped_column(JSON, default=list)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class CveCpe(Base):
    """One vulnerable cpeMatch of a CVE's configurations: a CPE and an optional version range."""

    __tablename__ = "cve_cpes"
    __table_args__ = (
        Index("ix_cve_cpes_vendor_product", "vendor", "product"),
        Index("ix_cve_cpes_cve_id", "cve_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cve_id: Mapped[str] = mapped_column(ForeignKey("cve_records.id", ondelete="CASCADE"))
    part: Mapped[str] = mapped_column(String(1))
    vendor: Mapped[str] = mapped_column(String(150))
    product: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))  # "*" for a range, else one exact version
    version_update: Mapped[str] = mapped_column(String(100), default="*")
    criteria: Mapped[str] = mapped_column(String(600))
    version_start_including: Mapped[str | None] = mapped_column(String(100), nullable=True)
    version_start_excluding: Mapped[str | None] = mapped_column(String(100), nullable=True)
    version_end_including: Mapped[str | None] = mapped_column(String(100), nullable=True)
    version_end_excluding: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CveMatch(Base):
    """A device of a tenant running something a CVE's ranges cover, from a scan or its agent."""

    __tablename__ = "cve_matches"
    __table_args__ = (
        Index("ix_cve_matches_device_cve_source", "device_id", "cve_id", "source", unique=True),
        Index("ix_cve_matches_tenant_cve", "tenant_id", "cve_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    cve_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(8))  # scan | agent
    cpe: Mapped[str] = mapped_column(String(300))
    matched_version: Mapped[str] = mapped_column(String(100))
    package: Mapped[str | None] = mapped_column(String(200), nullable=True)  # software name or service
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class CveImport(Base):
    """One feed file imported (by `ronda cve import`, POST /cve/update or the schedule)."""

    __tablename__ = "cve_imports"
    __table_args__ = (Index("ix_cve_imports_sha256", "sha256"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cvi"))
    file_name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16), default="cli")
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class CveState(Base):
    """Small shared facts: the data version (bumped by each import) and what matching has caught up to."""

    __tablename__ = "cve_state"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

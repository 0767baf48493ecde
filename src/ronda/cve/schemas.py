"""CVE API shapes: the match objects of /cve/affected (the NetRecon shape: one CVE with its affected
devices), search results, the detail, statistics, database info and the update summary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from ronda.core.schemas import OutputModel, UtcDatetime

Severity = Literal["critical", "high", "medium", "low"]


class Reference(BaseModel):
    url: str
    source: str | None = None
    tags: list[str] = []


class AffectedDevice(BaseModel):
    device_id: str
    ip: str | None
    hostname: str | None
    device_name: str | None
    site_id: str | None
    matched_service: str | None  # the scanned service or the installed package
    matched_port: int | None
    matched_version: str
    cpe: str
    source: Literal["scan", "agent"]
    first_seen: UtcDatetime


class CveSummary(OutputModel):
    cve_id: str
    description: str
    cvss_score: float | None
    severity: str | None
    cvss_v31_score: float | None
    cvss_v40_score: float | None
    published: UtcDatetime | None
    last_modified: UtcDatetime | None
    references: list[str]


class AffectedCve(CveSummary):
    """One CVE matched in the caller's tenant, with the devices it affects."""

    affected_devices: list[AffectedDevice]
    affected_device_count: int
    mitre_techniques: list[str]


class CpeRange(BaseModel):
    criteria: str
    vendor: str
    product: str
    version_start_including: str | None
    version_start_excluding: str | None
    version_end_including: str | None
    version_end_excluding: str | None


class CveDetail(CveSummary):
    source_identifier: str | None
    vuln_status: str | None
    cvss_v31_severity: str | None
    cvss_v31_vector: str | None
    cvss_v40_severity: str | None
    cvss_v40_vector: str | None
    weaknesses: list[str]
    reference_details: list[Reference]
    affected_cpes: list[CpeRange]
    remediation: list[str]
    mitre_techniques: list[str]
    affected_devices: list[AffectedDevice]
    affected_device_count: int


class SeverityCounts(BaseModel):
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0


class CveStats(BaseModel):
    total_matched: int  # distinct CVEs matched on the tenant's devices
    total_matches: int  # (device, CVE) pairs
    by_severity: SeverityCounts
    affected_devices: int
    last_db_update: UtcDatetime | None
    db_total_cves: int


class FeedFile(BaseModel):
    file_name: str
    sha256: str
    size: int
    records: int
    created: int
    updated: int
    skipped: int
    source: str
    imported_at: UtcDatetime


class DbInfo(BaseModel):
    total_entries: int
    total_cpe_ranges: int
    last_update: UtcDatetime | None
    last_import: FeedFile | None
    update_source: Literal["NVD"] = "NVD"
    next_scheduled_update: UtcDatetime | None
    feed_dir_configured: bool
    feed_files: list[FeedFile]


class UpdateAccepted(BaseModel):
    status: Literal["accepted", "up_to_date"]
    feed_dir: str
    new_files: list[str]
    already_imported: int
    detail: str

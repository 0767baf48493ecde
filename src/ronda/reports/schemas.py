"""Report requests and what GET /reports answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Framework = Literal["iso27001", "soc2"]
Format = Literal["pdf", "csv", "json"]
ReportStatus = Literal["pending", "running", "completed", "failed"]
ReportType = Literal["compliance", "network"]


class DateRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date = Field(description="First day of the period (YYYY-MM-DD)")
    end: date = Field(description="Last day of the period, included (YYYY-MM-DD)")


class ComplianceReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    framework: Framework = Field(description="iso27001 (ISO/IEC 27001:2022 Annex A) or soc2 (2017 TSC)")
    format: Format = Field("pdf", description="pdf, csv or json")
    date_range: DateRange | None = Field(None, description="The period; default the 90 days ending today")


class NetworkReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = Field("pdf", description="pdf, csv or json")
    date_range: DateRange | None = Field(None, description="Only devices and ports seen in this period; "
                                                           "default the current state")
    site_id: str | None = Field(None, max_length=40, description="Only this site's devices")


class ReportRead(BaseModel):
    id: str
    type: ReportType
    framework: str | None
    format: Format
    status: ReportStatus
    date_range: DateRange | None
    site_id: str | None = None
    file_name: str | None
    content_type: str | None
    size: int | None = Field(description="File size in bytes, once completed")
    download_url: str | None = Field(description="Where to download the file, once completed")
    requested_by: str | None
    requested_by_name: str | None
    summary: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

"""GET /dashboard: the tenant's posture at a glance (recoger-docs §6 "Dashboard home")."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from ronda.core.schemas import OutputModel, UtcDatetime
from ronda.services.schemas import ReviewDue, StatusCounts


class DeviceStatusCounts(OutputModel):
    compliant: int = 0
    needs_review: int = 0
    non_compliant: int = 0
    unknown: int = 0


class DeviceSummary(OutputModel):
    total: int
    by_status: DeviceStatusCounts
    compliance_score: float | None = Field(
        description="Compliant devices as a percentage of evaluated ones (unknown devices left out)")


class ServiceSummary(OutputModel):
    total: int
    by_status: StatusCounts
    compliance_score: float | None = Field(description="Compliant services as a percentage of all services")
    never_reviewed: int
    overdue: int


class Activity(OutputModel):
    id: str
    event_type: str
    event_name: str
    category: str
    actor_id: str | None
    actor_email: str | None
    actor_type: str
    resource_type: str | None
    resource_id: str | None
    created_at: UtcDatetime


class Dashboard(OutputModel):
    compliance_score: float | None = Field(
        description="Compliant devices and services over all evaluated devices and all services, as a percentage")
    devices: DeviceSummary
    services: ServiceSummary
    services_due: list[ReviewDue] = Field(description="Services that need review (overdue or never reviewed) "
                                                      "or are non-compliant, most urgent first")
    upcoming_reviews: list[ReviewDue] = Field(description="Reviews due within the window, soonest first")
    recent_activity: list[Activity] = Field(description="Latest audit records (your own unless you may read the "
                                                        "audit log)")
    scope: str = Field(description="`tenant`, or `own` for the user role (only its devices and services)")
    as_of: date

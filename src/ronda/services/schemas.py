"""Service, review and my-dashboard shapes (product.md §8, the 004 seed)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime
from ronda.services.policy import Classification

Category = Literal[
    "development", "communication", "infrastructure", "productivity", "security",
    "finance", "hr", "sales", "marketing", "other",
]
Frequency = Literal["monthly", "quarterly", "semiannual", "annual"]
ServiceStatus = Literal["compliant", "needs_review", "non_compliant"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Location = Annotated[str, StringConstraints(max_length=200)]
OwnerId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
LongText = Annotated[str, StringConstraints(max_length=20000)]


def _check_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 2048 or not value.lower().startswith(("http://", "https://")) or " " in value:
        raise ValueError("must be an http:// or https:// URL of at most 2048 characters")
    return value


class ServiceRead(OutputModel):
    id: str
    tenant_id: str
    name: str
    description: str | None
    category: str
    url: str | None
    owner_id: str | None
    data_classification: str
    sso_enabled: bool
    mfa_enforced: bool
    audit_logging_enabled: bool
    encrypted_at_rest: bool
    data_location: str | None
    review_frequency: str
    status: ServiceStatus = Field(description="compliant, needs_review (never reviewed or overdue) or non_compliant")
    issues: list[str] = Field(description="The tenant policy rules the current answers break")
    review_overdue: bool = Field(description="The next review date has passed")
    last_review_date: date | None
    next_review_date: date | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ServiceCreate(InputModel):
    name: Name
    description: Description | None = None
    category: Category = "other"
    url: str | None = Field(None, description="http(s) URL of the service")
    owner_id: OwnerId | None = Field(None, description="A user of your tenant responsible for the service")
    data_classification: Classification = "internal"
    sso_enabled: bool = False
    mfa_enforced: bool = False
    audit_logging_enabled: bool = False
    encrypted_at_rest: bool = False
    data_location: Location | None = None
    review_frequency: Frequency = "annual"
    next_review_date: date | None = Field(None, description="When the first review is due")

    _url = field_validator("url")(_check_url)


class ServicePatch(InputModel):
    """Fields given change; `null` clears description, url, owner_id, data_location or next_review_date."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    url: str | None = None
    owner_id: OwnerId | None = None
    data_classification: Classification | None = None
    sso_enabled: bool | None = None
    mfa_enforced: bool | None = None
    audit_logging_enabled: bool | None = None
    encrypted_at_rest: bool | None = None
    data_location: Location | None = None
    review_frequency: Frequency | None = None
    next_review_date: date | None = None

    _url = field_validator("url")(_check_url)


NULLABLE = frozenset({"description", "url", "owner_id", "data_location", "next_review_date"})


class ReviewCreate(InputModel):
    """A security review. Answers left out keep the service's current ones; review_date defaults to today."""

    review_date: date | None = Field(None, description="When the review took place; not in the future")
    next_review_date: date | None = Field(None, description="Defaults to review_date + the review frequency")
    findings: LongText | None = None
    notes: LongText | None = None
    sso_enabled: bool | None = None
    mfa_enforced: bool | None = None
    audit_logging_enabled: bool | None = None
    data_classification: Classification | None = None
    encrypted_at_rest: bool | None = None
    data_location: Location | None = None


class ReviewRead(OutputModel):
    id: str
    service_id: str
    reviewer_id: str | None
    review_date: date
    sso_enabled: bool
    mfa_enforced: bool
    audit_logging_enabled: bool
    data_classification: str
    encrypted_at_rest: bool
    data_location: str | None
    findings: str | None
    notes: str | None
    next_review_date: date | None
    status: ServiceStatus = Field(description="The service's status this review produced")
    created_at: UtcDatetime


class ReviewDue(OutputModel):
    """A service in a dashboard's list of reviews due."""

    id: str
    name: str
    category: str
    owner_id: str | None
    status: ServiceStatus
    last_review_date: date | None
    next_review_date: date | None
    days_until_due: int | None = Field(description="Negative when overdue; null when no review is scheduled")


class StatusCounts(OutputModel):
    compliant: int = 0
    needs_review: int = 0
    non_compliant: int = 0


class MyServicesDashboard(OutputModel):
    total_services: int
    by_status: StatusCounts
    by_category: dict[str, int]
    compliance_score: float | None = Field(description="Compliant services as a percentage; null without services")
    never_reviewed: int
    overdue_reviews: list[ReviewDue] = Field(description="Next review date passed, most overdue first")
    upcoming_reviews: list[ReviewDue] = Field(description="Due within the next `days` days, soonest first")
    as_of: date

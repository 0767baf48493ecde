"""Evidence from the SaaS inventory (services) and their security reviews.

Review timeliness is worked out from the review history: each review is due again on its
next_review_date and stays overdue until the following review (or the end of the period); a new
service has FIRST_REVIEW_GRACE days for its first review. Days are counted in SQL per service and
summed in SQL; only the services with overdue days come back as rows (the exceptions).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

from ronda.compliance.context import EvidenceContext
from ronda.compliance.types import Evidence, ExceptionItem, share_result
from ronda.core.tenancy import scoped, tenant_clause
from ronda.services.models import Service, ServiceReview

FIRST_REVIEW_GRACE = 30  # days a new service may go without its first review
DEFAULT_REVIEW_DAYS = 365  # a review without a next_review_date is due again a year later
SENSITIVE = ("confidential", "restricted")
NEVER = date(9999, 12, 31)


def _period_days(ctx: EvidenceContext) -> tuple[date, date]:
    """[start, end) in whole days; a period ending today includes today."""
    end = ctx.end
    end_day = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(days=1)
    return ctx.start_day, end_day


def _as_day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


async def service_reviews(ctx: EvidenceContext) -> Evidence:
    d = ctx.dialect
    p_start, p_end = _period_days(ctx)
    ps, pe = d.day(p_start), d.day(p_end)
    order = (ServiceReview.review_date, ServiceReview.created_at, ServiceReview.id)
    reviews = scoped(select(
        ServiceReview.service_id.label("service_id"),
        ServiceReview.review_date.label("reviewed"),
        func.coalesce(ServiceReview.next_review_date,
                      d.plus_days_date(ServiceReview.review_date, DEFAULT_REVIEW_DAYS)).label("due"),
        func.lead(ServiceReview.review_date).over(partition_by=ServiceReview.service_id, order_by=order).label("done"),
    ), ServiceReview, ctx.tenant_id).where(ServiceReview.review_date < pe).subquery("reviews")
    lapse_end = d.least(func.coalesce(reviews.c.done, pe), pe)
    overdue = d.greatest(d.days(lapse_end, d.greatest(reviews.c.due, ps)), 0)
    per_review = (
        select(
            reviews.c.service_id,
            func.min(reviews.c.reviewed).label("first_review"),
            func.sum(overdue).label("overdue"),
            func.max(case((overdue > 0, reviews.c.due))).label("since"),
            func.max(case((overdue > 0, func.coalesce(reviews.c.done, d.day(NEVER))))).label("until"),
        ).group_by(reviews.c.service_id).subquery("per_review")
    )
    created = d.date_of(Service.created_at)
    first_due = d.plus_days_date(created, FIRST_REVIEW_GRACE)
    gap_end = d.least(func.coalesce(per_review.c.first_review, pe), pe)
    gap = d.greatest(d.days(gap_end, d.greatest(first_due, ps)), 0)
    service_days = d.greatest(d.days(pe, d.greatest(created, ps)), 0)
    total_overdue = func.coalesce(per_review.c.overdue, 0) + gap
    per_service = (
        select(
            Service.id.label("id"), Service.name.label("name"), service_days.label("days"),
            total_overdue.label("overdue"), gap.label("gap"), first_due.label("first_due"),
            per_review.c.since, per_review.c.until, per_review.c.first_review,
        )
        .outerjoin(per_review, per_review.c.service_id == Service.id)
        .where(tenant_clause(Service, ctx.tenant_id), Service.created_at < d.moment(ctx.end))
        .subquery("per_service")
    )
    totals = (await ctx.session.execute(select(
        func.count(), func.coalesce(func.sum(per_service.c.days), 0), func.coalesce(func.sum(per_service.c.overdue), 0),
        func.coalesce(func.sum(case((per_service.c.overdue > 0, 1), else_=0)), 0),
    ))).one()
    services, days, overdue_days, lapsed = (int(v) for v in totals)
    rows = (await ctx.session.execute(
        select(per_service).where(per_service.c.overdue > 0).order_by(per_service.c.id)
    )).mappings().all()
    items = []
    for row in rows:
        since, until = _as_day(row["since"]), _as_day(row["until"])
        if since is None:  # only the first review was late
            since = _as_day(row["first_due"])
            until = _as_day(row["first_review"])
            reason = "never reviewed" if until is None else "first review late"
        else:
            reason = "review overdue"
        items.append(ExceptionItem("service", row["id"], str(row["name"]), reason, since,
                                   None if until in (None, NEVER) or (until and until >= p_end) else until))
    items.sort(key=lambda item: (item.until is not None, str(item.since or ""), item.subject_name))
    return Evidence(
        key="service_reviews", title="Services reviewed on schedule", source="service reviews",
        result=share_result(days - overdue_days, days), passed=days - overdue_days, total=days, unit="service-days",
        exceptions=items[: ctx.max_exceptions], exceptions_total=lapsed,
        details={"services": services, "services_lapsed": lapsed},
        note=f"Days each service was within its review schedule; a new service has {FIRST_REVIEW_GRACE} days "
             "for its first review.",
    )


def _service_setting(key: str, title: str, setting: Any, reason: str, note: str) -> Any:
    """Confidential and restricted services must have `setting` on (as recorded at their last review)."""

    async def query(ctx: EvidenceContext) -> Evidence:
        d = ctx.dialect
        scope = and_(tenant_clause(Service, ctx.tenant_id), Service.created_at < d.moment(ctx.end),
                     Service.data_classification.in_(SENSITIVE))
        total, ok = (await ctx.session.execute(
            select(func.count(), func.coalesce(func.sum(case((setting, 1), else_=0)), 0)).where(scope)
        )).one()
        since = func.coalesce(Service.last_review_date, d.date_of(Service.created_at))
        rows = (await ctx.session.execute(
            select(Service.id, Service.name, Service.data_classification, since)
            .where(scope, ~setting).order_by(since, Service.id).limit(ctx.max_exceptions)
        )).all()
        items = [ExceptionItem("service", sid, str(name), f"{classification} data, {reason}", _as_day(at))
                 for sid, name, classification, at in rows]
        total, ok = int(total), int(ok)
        return Evidence(
            key=key, title=title, source="services", result=share_result(ok, total, pass_at=1.0),
            passed=ok, total=total, unit="services", exceptions=items, exceptions_total=total - ok, note=note,
        )

    query.__name__ = f"evidence_{key}"
    return query


service_sso_mfa = _service_setting(
    "service_sso_mfa", "SSO and MFA on services holding confidential data",
    and_(Service.sso_enabled.is_(True), Service.mfa_enforced.is_(True)), "SSO or MFA missing",
    "Services classified confidential or restricted; settings as recorded at their latest review.")
service_encryption = _service_setting(
    "service_encryption", "Encryption at rest on services holding confidential data",
    Service.encrypted_at_rest.is_(True), "not encrypted at rest",
    "Services classified confidential or restricted; settings as recorded at their latest review.")
service_logging = _service_setting(
    "service_logging", "Audit logging on services holding confidential data",
    Service.audit_logging_enabled.is_(True), "audit logging off",
    "Services classified confidential or restricted; settings as recorded at their latest review.")


async def supplier_inventory(ctx: EvidenceContext) -> Evidence:
    """Every service has an owner and a recorded data location."""
    d = ctx.dialect
    scope = and_(tenant_clause(Service, ctx.tenant_id), Service.created_at < d.moment(ctx.end))
    lacking = or_(Service.owner_id.is_(None), Service.data_location.is_(None), Service.data_location == literal(""))
    total, bad = (await ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(case((lacking, 1), else_=0)), 0)).where(scope)
    )).one()
    rows = (await ctx.session.execute(
        select(Service.id, Service.name, Service.owner_id, Service.data_location, Service.created_at)
        .where(scope, lacking).order_by(Service.created_at, Service.id).limit(ctx.max_exceptions)
    )).all()
    items = []
    for sid, name, owner, location, created in rows:
        reasons = [text for text, missing in (("no owner", owner is None), ("data location unknown", not location))
                   if missing]
        items.append(ExceptionItem("service", sid, str(name), ", ".join(reasons), created))
    total, bad = int(total), int(bad)
    return Evidence(
        key="supplier_inventory", title="Services inventoried with an owner and data location", source="services",
        result=share_result(total - bad, total), passed=total - bad, total=total, unit="services",
        exceptions=items, exceptions_total=bad, note="Every SaaS service in the inventory at the period's end.",
    )

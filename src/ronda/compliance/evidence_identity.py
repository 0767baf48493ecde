"""Evidence from users (MFA, inactive accounts), API keys and the audit log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, case, func, or_, select

from ronda.api_keys.models import ApiKey
from ronda.audit.models import AuditLog
from ronda.compliance.chain import verify
from ronda.compliance.context import EvidenceContext
from ronda.compliance.types import Evidence, ExceptionItem, share_result
from ronda.core.tenancy import scoped, tenant_clause
from ronda.core.timeutil import as_utc
from ronda.users.models import User

ADMIN_ROLES = ("admin", "super_admin")
INACTIVE_DAYS = 90  # an account unused this long should have been removed
KEY_UNUSED_DAYS = 90


async def _mfa(ctx: EvidenceContext, key: str, title: str, roles: tuple[str, ...] | None) -> Evidence:
    d = ctx.dialect
    users = scoped(select(User.id), User, ctx.tenant_id).where(
        User.is_active.is_(True), User.created_at < d.moment(ctx.end))
    if roles is not None:
        users = users.where(User.role.in_(roles))
    users = users.where(User.role != "agent")
    member = User.id.in_(users.scalar_subquery())
    total, with_mfa = (await ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(case((User.mfa_enabled.is_(True), 1), else_=0)), 0))
        .select_from(User).where(member)
    )).one()
    # Since when: the last time MFA was turned off, else since the account exists.
    disabled = (
        select(AuditLog.resource_id.label("user_id"), func.max(AuditLog.created_at).label("at"))
        .where(tenant_clause(AuditLog, ctx.tenant_id), AuditLog.event_type == "auth.mfa.disabled",
               AuditLog.resource_type == "user")
        .group_by(AuditLog.resource_id).subquery()
    )
    since = func.coalesce(disabled.c.at, User.created_at)
    rows = (await ctx.session.execute(
        select(User.id, User.username, User.email, User.role, since.label("since"))
        .outerjoin(disabled, disabled.c.user_id == User.id)
        .where(member, User.mfa_enabled.is_(False)).order_by(since, User.id).limit(ctx.max_exceptions)
    )).all()
    items = [ExceptionItem("user", uid, f"{username} <{email}>", f"{role} without MFA", at)
             for uid, username, email, role, at in rows]
    total, with_mfa = int(total), int(with_mfa)
    # Every privileged account must have MFA: one without it fails the evidence.
    bar = (1.0, 1.0) if roles is not None else (0.95, 0.5)
    return Evidence(
        key=key, title=title, source="users", result=share_result(with_mfa, total, *bar),
        passed=with_mfa, total=total, unit="users", exceptions=items, exceptions_total=total - with_mfa,
        details={"tenant_requires_mfa": await _tenant_requires_mfa(ctx)},
        note="Active accounts at the end of the period; MFA state as it stands now.",
    )


async def _tenant_requires_mfa(ctx: EvidenceContext) -> bool:
    from ronda.tenants.models import Tenant

    tenant = await ctx.session.get(Tenant, ctx.tenant_id)
    return bool(tenant is not None and tenant.mfa_required)


async def users_mfa(ctx: EvidenceContext) -> Evidence:
    return await _mfa(ctx, "users_mfa", "Users with multi-factor authentication", None)


async def privileged_mfa(ctx: EvidenceContext) -> Evidence:
    return await _mfa(ctx, "privileged_mfa", "Administrators with multi-factor authentication", ADMIN_ROLES)


async def inactive_accounts(ctx: EvidenceContext) -> Evidence:
    """Active accounts older than 90 days that have not logged in for 90 days at the period's end."""
    d = ctx.dialect
    cutoff = d.moment(ctx.end - timedelta(days=INACTIVE_DAYS))
    active = and_(tenant_clause(User, ctx.tenant_id), User.is_active.is_(True), User.role != "agent",
                  User.created_at < d.moment(ctx.end))
    stale = and_(User.created_at < cutoff, or_(User.last_login_at.is_(None), User.last_login_at < cutoff))
    total, idle = (await ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(case((stale, 1), else_=0)), 0)).select_from(User).where(active)
    )).one()
    since = func.coalesce(User.last_login_at, User.created_at)
    rows = (await ctx.session.execute(
        select(User.id, User.username, User.email, User.last_login_at, since)
        .where(active, stale).order_by(since, User.id).limit(ctx.max_exceptions)
    )).all()
    items = [ExceptionItem("user", uid, f"{username} <{email}>",
                           "never logged in" if last is None else f"no login for {INACTIVE_DAYS}+ days", at)
             for uid, username, email, last, at in rows]
    total, idle = int(total), int(idle)
    return Evidence(
        key="inactive_accounts", title="Active accounts in use", source="users",
        result=share_result(total - idle, total), passed=total - idle, total=total, unit="users",
        exceptions=items, exceptions_total=idle,
        note=f"Accounts still active with no login in the {INACTIVE_DAYS} days before the period's end.",
    )


async def api_key_hygiene(ctx: EvidenceContext) -> Evidence:
    """Keys usable at some point in the period: each should expire and be in use."""
    d = ctx.dialect
    end, start = d.moment(ctx.end), d.moment(ctx.start)
    unused_cut = d.moment(ctx.end - timedelta(days=KEY_UNUSED_DAYS))
    live = and_(
        tenant_clause(ApiKey, ctx.tenant_id), ApiKey.created_at < end,
        or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at >= start),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at >= start),
    )
    no_expiry = ApiKey.expires_at.is_(None)
    still_live = and_(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at >= end))
    unused = and_(still_live, ApiKey.created_at < unused_cut,
                  or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unused_cut))
    short = or_(no_expiry, unused)
    total, bad = (await ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(case((short, 1), else_=0)), 0)).select_from(ApiKey).where(live)
    )).one()
    since = case((no_expiry, ApiKey.created_at), else_=func.coalesce(ApiKey.last_used_at, ApiKey.created_at))
    rows = (await ctx.session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.key_prefix, ApiKey.expires_at, ApiKey.last_used_at, ApiKey.revoked_at,
               ApiKey.created_at, since.label("since"))
        .where(live, short).order_by(since, ApiKey.id).limit(ctx.max_exceptions)
    )).all()
    cut = ctx.end - timedelta(days=KEY_UNUSED_DAYS)
    items = []
    for key_id, name, prefix, expires, last_used, revoked, created, at in rows:
        reasons = ["never expires"] if expires is None else []
        used = as_utc(last_used)
        if revoked is None and (as_utc(created) or cut) < cut and (used is None or used < cut):
            reasons.append("never used" if used is None else f"unused for {KEY_UNUSED_DAYS}+ days")
        items.append(ExceptionItem("api_key", key_id, f"{name} ({prefix})", ", ".join(reasons), at, revoked))
    total, bad = int(total), int(bad)
    return Evidence(
        key="api_key_hygiene", title="API keys with an expiry and in use", source="API keys",
        result=share_result(total - bad, total), passed=total - bad, total=total, unit="keys",
        exceptions=items, exceptions_total=bad,
        note=f"Keys usable during the period; a key should expire and not lie unused for {KEY_UNUSED_DAYS} days.",
    )


async def audit_chain(ctx: EvidenceContext) -> Evidence:
    """The tenant's audit log hash chain verifies from its first record to its head."""
    report = await verify(ctx.session, ctx.tenant_id)
    items = []
    if not report.valid and report.first_broken:
        broken = report.first_broken
        items.append(ExceptionItem("audit_record", broken.get("id"), f"record #{broken.get('seq')}",
                                   str(broken.get("reason"))))
    return Evidence(
        key="audit_chain", title="Audit log integrity (hash chain verified)", source="audit log",
        result="pass" if report.valid else "fail", passed=report.checked if report.valid else 0,
        total=report.checked, unit="records", exceptions=items, exceptions_total=len(items),
        details={"chain": report.chain, "valid": report.valid, "first_broken": report.first_broken},
        note="Every record's hash covers its fields and the previous record's hash; verified at generation.",
    )


async def audit_activity(ctx: EvidenceContext) -> Evidence:
    """Security-relevant activity was recorded during the period."""
    d = ctx.dialect
    in_period = and_(tenant_clause(AuditLog, ctx.tenant_id), AuditLog.created_at >= d.moment(ctx.start),
                     AuditLog.created_at < d.moment(ctx.end))
    rows = (await ctx.session.execute(
        select(AuditLog.category, func.count()).where(in_period).group_by(AuditLog.category)
        .order_by(AuditLog.category)
    )).all()
    by_category = {str(category): int(count) for category, count in rows}
    days = int(await ctx.session.scalar(
        select(func.count(func.distinct(d.date_of(AuditLog.created_at)))).where(in_period)) or 0)
    total = sum(by_category.values())
    return Evidence(
        key="audit_activity", title="Activity recorded in the audit log", source="audit log",
        result="pass" if total else "fail", passed=total, total=total, unit="records",
        details={"by_category": by_category, "days_with_records": days},
        note="Logins, changes, compliance changes and security events recorded during the period.",
    )

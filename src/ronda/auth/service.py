"""Login, refresh with rotation and reuse detection, logout, lockout, 2FA and password changes.

Services flush, never commit; a security event that must survive a refused request raises
AppError(persist=True) so the unit of work keeps it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.auth import mfa
from ronda.auth.models import AuthSession, RefreshToken
from ronda.auth.schemas import LoginRequest, TokenResponse, TwoFactorEnabled, TwoFactorSetup
from ronda.core.db import read_sessions, transaction
from ronda.core.errors import AppError
from ronda.core.ids import new_id
from ronda.core.principal import Principal
from ronda.core.runtime import Runtime
from ronda.core.security import password_problem
from ronda.core.timeutil import utcnow
from ronda.tenants.models import Tenant
from ronda.users.models import User

BAD_LOGIN = "Invalid username or password"
# What a login reads before the hash (built once): enough to tell the usual success from the rest.
LOGIN_LOOKUP = (
    select(User.id, User.tenant_id, User.email, User.role, User.password_hash, User.locked_until, User.is_active,
           User.mfa_enabled, Tenant.is_active.label("tenant_active"), Tenant.mfa_required)
    .join(Tenant, Tenant.id == User.tenant_id)
    .where(or_(User.username == bindparam("username"), User.email == bindparam("email")))
)


def _retry_after(locked_until: object) -> dict[str, str]:
    assert isinstance(locked_until, datetime)
    seconds = max(int((locked_until - utcnow()).total_seconds()) + 1, 1)
    return {"Retry-After": str(seconds)}


class _Holder(Protocol):
    """Whom tokens are issued to: a User, or the login's row of it."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def role(self) -> str: ...


async def _issue(session: AsyncSession, rt: Runtime, user: _Holder, auth: AuthSession) -> TokenResponse:
    access, _, ttl = rt.tokens.issue(
        subject=user.id, tenant_id=user.tenant_id, session_id=auth.id, token_type="access", scope=auth.scope
    )
    refresh, refresh_id, refresh_ttl = rt.tokens.issue(
        subject=user.id, tenant_id=user.tenant_id, session_id=auth.id, token_type="refresh", scope=auth.scope
    )
    session.add(
        RefreshToken(
            id=refresh_id,
            session_id=auth.id,
            tenant_id=user.tenant_id,
            user_id=user.id,
            expires_at=utcnow() + timedelta(seconds=refresh_ttl),
        )
    )
    await session.flush()
    return TokenResponse(
        access_token=access,
        refresh_token=refresh,
        expires_in=ttl,
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        mfa_setup_required=auth.scope == "mfa_setup",
    )


def _register_failure(user: User, tenant: Tenant) -> bool:
    """Count a failure in the tenant's window; True when this failure locks the account."""
    now = utcnow()
    window = timedelta(minutes=tenant.lockout_window_minutes)
    expired_lock = user.locked_until is not None and user.locked_until <= now
    if user.failed_window_start is None or now - user.failed_window_start > window or expired_lock:
        user.failed_login_count = 1
        user.failed_window_start = now
        user.locked_until = None
    else:
        user.failed_login_count += 1
    if user.failed_login_count >= tenant.lockout_threshold:
        user.locked_until = now + timedelta(minutes=tenant.lockout_duration_minutes)
        return True
    return False


async def _fail(session: AsyncSession, actor: Actor, user: User, tenant: Tenant, reason: str) -> AppError:
    locked = _register_failure(user, tenant)
    meta = {"reason": reason, "username": user.username, "failed_attempts": user.failed_login_count}
    await audit.record(
        session,
        actor.but(actor_id=user.id, actor_email=user.email, tenant_id=user.tenant_id),
        "auth.login.failed",
        resource_type="user",
        resource_id=user.id,
        metadata=meta,
    )
    if locked:
        await audit.record(
            session,
            actor.but(actor_type="system", actor_id=None, actor_email=None, tenant_id=user.tenant_id),
            "auth.account.locked",
            resource_type="user",
            resource_id=user.id,
            metadata={
                "failed_attempts": user.failed_login_count,
                "locked_until": user.locked_until,
                "duration_minutes": tenant.lockout_duration_minutes,
            },
        )
        return AppError(
            423, "Account locked after repeated failed logins", persist=True, headers=_retry_after(user.locked_until)
        )
    message = "Invalid two-factor code" if reason == "bad_mfa_code" else BAD_LOGIN
    return AppError(401, message, persist=True)


async def login(session: AsyncSession, rt: Runtime, body: LoginRequest, actor: Actor) -> TokenResponse:
    identity = body.identity
    # Read the hash in a short read-only transaction, verify it off the event loop, and only
    # then open the write: the database is never locked while Argon2 runs.
    async with transaction(read_sessions(rt.sessions), write=False) as read:
        found = (await read.execute(LOGIN_LOOKUP, {"username": identity, "email": identity.lower()})).first()
    password_ok = await rt.passwords.verify(found.password_hash if found else None, body.password)
    if found is None:
        await audit.record(
            session, actor, "auth.login.failed", metadata={"reason": "unknown_user", "username": identity[:100]}
        )
        raise AppError(401, BAD_LOGIN, persist=True)
    if password_ok and _plain_success(found, utcnow()):
        issued = await _quick_login(session, rt, found, actor)
        if issued is not None:
            return issued
    user = (
        await session.execute(
            select(User).where(User.id == found.id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one()
    tenant = await session.get(Tenant, user.tenant_id)
    assert tenant is not None
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        await audit.record(
            session,
            actor.but(actor_id=user.id, actor_email=user.email, tenant_id=user.tenant_id),
            "auth.login.failed",
            resource_type="user",
            resource_id=user.id,
            metadata={"reason": "account_locked", "username": user.username},
        )
        raise AppError(
            423,
            "Account is locked; try again later or ask an admin to unlock it",
            persist=True,
            headers=_retry_after(user.locked_until),
        )
    if not password_ok or user.password_hash != found.password_hash:
        raise await _fail(session, actor, user, tenant, "bad_password")
    if not user.is_active or not tenant.is_active:
        await audit.record(
            session,
            actor.but(actor_id=user.id, tenant_id=user.tenant_id),
            "auth.login.failed",
            resource_type="user",
            resource_id=user.id,
            metadata={"reason": "inactive"},
        )
        raise AppError(401, BAD_LOGIN, persist=True)
    if user.mfa_enabled:
        if not body.totp_code:
            raise AppError(401, "Two-factor code required", code="MFA_REQUIRED")
        if not mfa.verify_totp(user, body.totp_code):
            if not await mfa.use_recovery_code(session, user, body.totp_code):
                await audit.record(
                    session,
                    actor.but(actor_id=user.id, tenant_id=user.tenant_id),
                    "auth.mfa.failed",
                    resource_type="user",
                    resource_id=user.id,
                )
                raise await _fail(session, actor, user, tenant, "bad_mfa_code")
            await audit.record(
                session,
                actor.but(actor_id=user.id, actor_email=user.email, tenant_id=user.tenant_id),
                "auth.mfa.recovery_code_used",
                resource_type="user",
                resource_id=user.id,
                metadata={"remaining": await mfa.remaining_recovery_codes(session, user.id)},
            )
    user.failed_login_count = 0
    user.failed_window_start = None
    user.locked_until = None
    user.last_login_at = now
    scope = "mfa_setup" if tenant.mfa_required and not user.mfa_enabled else "full"
    auth = AuthSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        scope=scope,
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        expires_at=now + timedelta(seconds=rt.tokens.refresh_ttl),
    )
    session.add(auth)
    await session.flush()
    await audit.record(
        session,
        actor.but(actor_id=user.id, actor_email=user.email, tenant_id=user.tenant_id),
        "auth.login.succeeded",
        resource_type="user",
        resource_id=user.id,
        metadata={"session_id": auth.id, "mfa": user.mfa_enabled, "scope": scope},
    )
    return await _issue(session, rt, user, auth)


def _plain_success(found: Any, now: datetime) -> bool:
    """As read before the hash: not locked, active, in an active tenant, no second factor to ask."""
    return ((found.locked_until is None or found.locked_until <= now) and found.is_active and found.tenant_active
            and not found.mfa_enabled)


async def _quick_login(session: AsyncSession, rt: Runtime, found: Any, actor: Actor) -> TokenResponse | None:
    """The usual login (right password, nothing in the way) with the locks held as briefly as possible:
    every login of a user waits for its row, every audited change of a tenant for its chain head, and a
    lock is held until the commit, across every round trip in between. So the session and tokens are
    written first, then the audit record (which locks the chain head), and last one guarded UPDATE
    resets the failure count if the user is still as read before the hash (same password, active, not
    locked, no 2FA, tenant active). None (rolled back) when the user changed meanwhile: the caller
    takes the locked path, which decides afresh."""
    now = utcnow()
    scope = "mfa_setup" if found.mfa_required else "full"
    # Its id now (the model's default, which would come at the flush): the tokens carry it.
    auth = AuthSession(id=new_id("sess"), tenant_id=found.tenant_id, user_id=found.id, scope=scope,
                       ip_address=actor.ip_address, user_agent=actor.user_agent,
                       expires_at=now + timedelta(seconds=rt.tokens.refresh_ttl))
    session.add(auth)
    issued = await _issue(session, rt, found, auth)
    await audit.record(
        session,
        actor.but(actor_id=found.id, actor_email=found.email, tenant_id=found.tenant_id),
        "auth.login.succeeded",
        resource_type="user",
        resource_id=found.id,
        metadata={"session_id": auth.id, "mfa": False, "scope": scope},
    )
    reset = await session.execute(
        update(User)
        .where(User.id == found.id, User.password_hash == found.password_hash, User.is_active.is_(True),
               User.mfa_enabled.is_(False), or_(User.locked_until.is_(None), User.locked_until <= now),
               select(Tenant.id).where(Tenant.id == User.tenant_id, Tenant.is_active.is_(True)).exists())
        .values(failed_login_count=0, failed_window_start=None, locked_until=None, last_login_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], reset).rowcount != 1:
        await session.rollback()  # the session, its tokens and the audit record with it
        return None
    return issued


async def _live_session(session: AsyncSession, session_id: str, user_id: str) -> tuple[AuthSession, User]:
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == session_id, AuthSession.user_id == user_id)
        )
    ).first()
    if row is None:
        raise AppError(401, "Invalid or expired refresh token")
    auth, user = row
    if auth.revoked_at is not None or not user.is_active or auth.expires_at <= utcnow():
        raise AppError(401, "Session has ended; log in again")
    return auth, user


async def refresh_with_token(session: AsyncSession, rt: Runtime, token: str, actor: Actor) -> TokenResponse:
    claims = rt.tokens.decode(token, "refresh")
    if claims is None:
        raise AppError(401, "Invalid or expired refresh token")
    spent = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == claims.token_id,
            RefreshToken.session_id == claims.session_id,
            RefreshToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    if (spent.rowcount or 0) != 1:  # type: ignore[attr-defined]
        known = await session.get(RefreshToken, claims.token_id)
        if known is not None and known.session_id == claims.session_id:
            # A spent token presented again: someone holds a copy. End the whole login.
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == claims.session_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason="refresh_reuse")
            )
            await audit.record(
                session,
                actor.but(actor_id=claims.subject, tenant_id=claims.tenant_id),
                "auth.token.reuse_detected",
                resource_type="session",
                resource_id=claims.session_id,
                metadata={"session_id": claims.session_id},
            )
            raise AppError(401, "Refresh token already used; the session has been revoked", persist=True)
        raise AppError(401, "Invalid or expired refresh token")
    auth, user = await _live_session(session, claims.session_id, claims.subject)
    await audit.record(
        session,
        actor.but(actor_id=user.id, actor_email=user.email, tenant_id=user.tenant_id),
        "auth.token.refreshed",
        resource_type="session",
        resource_id=auth.id,
    )
    return await _issue(session, rt, user, auth)


async def refresh_with_access(session: AsyncSession, rt: Runtime, principal: Principal, actor: Actor) -> TokenResponse:
    if principal.kind != "user" or principal.session_id is None:
        raise AppError(400, "API keys do not expire by session; nothing to refresh")
    auth, user = await _live_session(session, principal.session_id, principal.user_id)
    await audit.record(
        session,
        actor,
        "auth.token.refreshed",
        resource_type="session",
        resource_id=auth.id,
        metadata={"via": "access_token"},
    )
    return await _issue(session, rt, user, auth)


async def logout(session: AsyncSession, principal: Principal, actor: Actor) -> str:
    if principal.kind != "user" or principal.session_id is None:
        raise AppError(400, "API keys are revoked with DELETE /api-keys/{id}")
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == principal.session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="logout")
    )
    await audit.record(session, actor, "auth.logout", resource_type="session", resource_id=principal.session_id)
    return principal.session_id


async def _me(session: AsyncSession, principal: Principal) -> User:
    if principal.kind != "user":
        raise AppError(403, "Only a signed-in user can do this, not an API key")
    # populate_existing: authentication loaded this row before the lock; without it the locked read
    # would keep that copy, and a change another process committed meanwhile would be lost.
    user = await session.get(User, principal.user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise AppError(401, "Invalid or expired credentials")
    return user


async def start_2fa(session: AsyncSession, principal: Principal, actor: Actor) -> TwoFactorSetup:
    user = await _me(session, principal)
    if user.mfa_enabled:
        raise AppError(409, "Two-factor authentication is already on; turn it off first")
    user.totp_pending_secret = mfa.new_secret()
    await audit.record(session, actor, "auth.mfa.setup_started", resource_type="user", resource_id=user.id)
    return TwoFactorSetup(
        secret=user.totp_pending_secret, otpauth_uri=mfa.otpauth_uri(user.totp_pending_secret, user.email)
    )


async def confirm_2fa(
    session: AsyncSession, rt: Runtime, principal: Principal, code: str, actor: Actor
) -> TwoFactorEnabled:
    user = await _me(session, principal)
    if user.mfa_enabled:
        raise AppError(409, "Two-factor authentication is already on")
    if not user.totp_pending_secret:
        raise AppError(409, "Start with POST /auth/2fa/setup")
    if not mfa.verify_totp(user, code, secret=user.totp_pending_secret):
        raise await _bad_code(session, actor, user, "confirm")
    user.totp_secret, user.totp_pending_secret, user.mfa_enabled = user.totp_pending_secret, None, True
    codes = await mfa.issue_recovery_codes(session, user)
    await audit.record(session, actor, "auth.mfa.enabled", resource_type="user", resource_id=user.id)
    tokens = None
    if principal.mfa_setup_only and principal.session_id:
        # The enrolment-only session becomes a full one; its old tokens stop working.
        auth = await session.get(AuthSession, principal.session_id)
        assert auth is not None
        auth.revoked_at, auth.revoked_reason = utcnow(), "mfa_enrolled"
        full = AuthSession(
            tenant_id=user.tenant_id,
            user_id=user.id,
            scope="full",
            ip_address=actor.ip_address,
            user_agent=actor.user_agent,
            expires_at=auth.expires_at,
        )
        session.add(full)
        await session.flush()
        tokens = await _issue(session, rt, user, full)
    return TwoFactorEnabled(mfa_enabled=True, recovery_codes=codes, tokens=tokens)


async def _bad_code(session: AsyncSession, actor: Actor, user: User, stage: str) -> AppError:
    """A wrong code while changing 2FA: audited, and the record survives the refusal."""
    await audit.record(
        session, actor, "auth.mfa.failed", resource_type="user", resource_id=user.id, metadata={"stage": stage}
    )
    return AppError(
        400,
        "Invalid two-factor code",
        persist=True,
        details=[{"field": "totp_code", "location": "body", "reason": "does not match"}],
    )


async def disable_2fa(session: AsyncSession, principal: Principal, code: str, actor: Actor) -> None:
    user = await _me(session, principal)
    if not user.mfa_enabled:
        raise AppError(409, "Two-factor authentication is not on")
    tenant = await session.get(Tenant, user.tenant_id)
    if tenant is not None and tenant.mfa_required:
        raise AppError(403, "Your tenant requires two-factor authentication")
    if not mfa.verify_totp(user, code) and not await mfa.use_recovery_code(session, user, code):
        raise await _bad_code(session, actor, user, "disable")
    user.mfa_enabled, user.totp_secret, user.totp_pending_secret = False, None, None
    await mfa.clear_recovery_codes(session, user.id)
    await audit.record(session, actor, "auth.mfa.disabled", resource_type="user", resource_id=user.id)


async def set_password(
    session: AsyncSession,
    rt: Runtime,
    user: User,
    current: str | None,
    new: str,
    actor: Actor,
    keep_session: str | None,
) -> None:
    """Check the current password, apply the policy, and end every other login of the user."""
    if current is not None and not await rt.passwords.verify(user.password_hash, current):
        await audit.record(
            session,
            actor,
            "auth.login.failed",
            resource_type="user",
            resource_id=user.id,
            metadata={"reason": "bad_current_password"},
        )
        raise AppError(
            400,
            "Current password is incorrect",
            persist=True,
            details=[{"field": "current_password", "location": "body", "reason": "incorrect"}],
        )
    problem = password_problem(new)
    if problem:
        raise AppError(400, problem, details=[{"field": "new_password", "location": "body", "reason": problem}])
    if current is not None and current == new:
        raise AppError(400, "The new password must differ from the current one")
    user.password_hash = await rt.passwords.hash(new)
    user.password_changed_at = utcnow()
    revoke = update(AuthSession).where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
    if keep_session:
        revoke = revoke.where(AuthSession.id != keep_session)
    await session.execute(revoke.values(revoked_at=utcnow(), revoked_reason="password_changed"))
    await audit.record(session, actor, "auth.password.changed", resource_type="user", resource_id=user.id)


async def change_password(
    session: AsyncSession, rt: Runtime, principal: Principal, current: str, new: str, actor: Actor
) -> None:
    user = await _me(session, principal)
    await set_password(session, rt, user, current, new, actor, keep_session=principal.session_id)

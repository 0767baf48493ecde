"""Turns the request's credentials into a Principal, then charges the caller's rate budget."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.api_keys.models import ApiKey
from ronda.auth.models import AuthSession
from ronda.core.authz import ADMIN_ROLES, role_permissions
from ronda.core.db import transaction
from ronda.core.errors import AppError
from ronda.core.middleware import ANONYMOUS_PER_MINUTE, client_ip
from ronda.core.principal import MFA_SETUP_PATHS, Principal
from ronda.core.ratelimit import PLAN_QUOTAS, TIERS, Decision, RateLimiter
from ronda.core.security import Tokens, api_key_digest, looks_like_jwt, same
from ronda.core.timeutil import utcnow
from ronda.tenants.models import Tenant
from ronda.users.models import User

log = logging.getLogger("ronda.auth")
LAST_USED_EVERY = timedelta(seconds=60)
UNAUTHORIZED = "Invalid or expired credentials"


def extract_credential(request: Request) -> str | None:
    api_key = request.headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def rate_tier(role: str, key_kind: str | None = None) -> str:
    if role == "agent" or key_kind == "service":
        return "service"
    return "admin" if role in ADMIN_ROLES else "standard"


class Authenticator:
    def __init__(self, tokens: Tokens, limiter: RateLimiter, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.sessions = sessions

    async def authenticate(self, request: Request) -> Principal:
        credential = extract_credential(request)
        if not credential:
            await self._charge_anonymous(request)
            raise AppError(401, "Authentication required", headers={"WWW-Authenticate": "Bearer"})
        session: AsyncSession = request.state.session
        if looks_like_jwt(credential):
            principal = await self._from_token(session, credential)
        else:
            principal = await self._from_api_key(session, credential)
        if principal is None:
            await self._charge_anonymous(request)
            raise AppError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        if principal.mfa_setup_only and not _mfa_setup_path(request.url.path):
            raise AppError(403, "Two-factor enrolment is required before using the API", code="MFA_SETUP_REQUIRED")
        await self._charge(request, principal)
        return principal

    async def _from_token(self, session: AsyncSession, token: str) -> Principal | None:
        claims = self.tokens.decode(token, "access")
        if claims is None:
            return None
        row = (
            await session.execute(
                select(
                    User, AuthSession.revoked_at, AuthSession.scope, Tenant.plan, Tenant.daily_quota, Tenant.is_active
                )
                .join(AuthSession, AuthSession.user_id == User.id)
                .join(Tenant, Tenant.id == User.tenant_id)
                .where(User.id == claims.subject, AuthSession.id == claims.session_id)
            )
        ).first()
        if row is None:
            return None
        user, revoked_at, scope, plan, quota, tenant_active = row
        if revoked_at is not None or not user.is_active or not tenant_active:
            return None
        if user.tenant_id != claims.tenant_id or scope != claims.scope:
            return None
        return Principal(
            kind="user",
            user_id=user.id,
            tenant_id=user.tenant_id,
            role=user.role,
            permissions=role_permissions(user.role),
            email=user.email,
            username=user.username,
            session_id=claims.session_id,
            token_id=claims.token_id,
            rate_key="user:" + user.id,
            rate_tier=rate_tier(user.role),
            plan=plan,
            daily_quota=quota,
            mfa_setup_only=claims.scope == "mfa_setup",
        )

    async def _from_api_key(self, session: AsyncSession, key: str) -> Principal | None:
        if len(key) > 100 or "_live_" not in key:
            return None
        digest = api_key_digest(key)
        row = (
            await session.execute(
                select(ApiKey, User, Tenant.plan, Tenant.daily_quota, Tenant.is_active)
                .join(User, User.id == ApiKey.user_id)
                .join(Tenant, Tenant.id == ApiKey.tenant_id)
                .where(ApiKey.key_hash == digest)
            )
        ).first()
        if row is None:
            return None
        api_key, user, plan, quota, tenant_active = row
        now = utcnow()
        if not same(api_key.key_hash, digest) or api_key.revoked_at is not None:
            return None
        if api_key.expires_at is not None and api_key.expires_at <= now:
            return None
        if not user.is_active or not tenant_active:
            return None
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_EVERY:
            await self._touch(api_key.id)
        return Principal(
            kind="api_key",
            user_id=user.id,
            tenant_id=api_key.tenant_id,
            role=user.role,
            permissions=role_permissions(user.role) & frozenset(api_key.permissions),
            email=user.email,
            username=user.username,
            api_key_id=api_key.id,
            rate_key="key:" + api_key.id,
            rate_tier=rate_tier(user.role, api_key.kind),
            plan=plan,
            daily_quota=quota,
        )

    async def _touch(self, key_id: str) -> None:
        # Its own short transaction, at most once a minute per key: a GET never writes otherwise.
        try:
            async with transaction(self.sessions) as tx:
                await tx.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
        except Exception:  # a busy database must not fail the caller's request
            log.warning("could not record last_used_at for %s", key_id)

    async def _charge(self, request: Request, principal: Principal) -> None:
        per_minute, burst = TIERS[principal.rate_tier]
        quota = principal.daily_quota if principal.daily_quota is not None else PLAN_QUOTAS.get(principal.plan)
        decision = await self.limiter.hit(
            principal.rate_key, per_minute, burst, quota_key="tenant:" + principal.tenant_id, quota=quota
        )
        self._apply(request, decision)

    async def _charge_anonymous(self, request: Request) -> None:
        """Unauthenticated and failed attempts draw on the client address's budget."""
        _, burst = TIERS["standard"]
        decision = await self.limiter.hit("ip:" + client_ip(request.scope), ANONYMOUS_PER_MINUTE, burst)
        self._apply(request, decision)

    def _apply(self, request: Request, decision: Decision) -> None:
        request.state.rate_decision = decision
        if not decision.allowed:
            raise AppError(
                429,
                f"Rate limit exceeded ({decision.reason}); retry in {decision.retry_after}s",
                headers=decision.headers(),
            )


def _mfa_setup_path(path: str) -> bool:
    return any(path.endswith(allowed) for allowed in MFA_SETUP_PATHS)

"""Turns the request's credentials into a Principal, then charges the caller's rate budget."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.agents.models import Agent
from ronda.api_keys.models import ApiKey
from ronda.auth.callers import CallerCache, RowSnapshot, remember_caller
from ronda.auth.epoch import NEUTRAL, Epoch
from ronda.auth.models import AuthSession
from ronda.core.authz import ADMIN_ROLES, role_permissions
from ronda.core.db import transaction, write_intent
from ronda.core.errors import AppError
from ronda.core.middleware import ANONYMOUS_PER_MINUTE, client_ip
from ronda.core.principal import MFA_SETUP_PATHS, Principal
from ronda.core.ratelimit import PLAN_QUOTAS, TIERS, Decision, RateLimiter
from ronda.core.security import TokenClaims, Tokens, api_key_digest, looks_like_jwt, same, secret_digest
from ronda.core.timeutil import utcnow
from ronda.core.uow import request_session
from ronda.devices.models import Device
from ronda.tenants.models import Tenant
from ronda.users.models import User

log = logging.getLogger("ronda.auth")
LAST_USED_EVERY = timedelta(seconds=60)
UNAUTHORIZED = "Invalid or expired credentials"
AGENT_MARKER = "_agent_"  # agent credentials are <prefix>_agent_<48 hex>
# The only routes an agent credential may call (enrolment itself needs no credential).
AGENT_PATHS = frozenset({"/api/v1/devices/report", "/api/v1/agents/heartbeat"})
# The look-ups are built once: every authenticated request runs one, and building (and cache-keying)
# a statement costs more than running it.
AGENT_LOOKUP = (
    select(Agent, Device, Tenant)
    .join(Device, Device.id == Agent.device_id)
    .join(Tenant, Tenant.id == Agent.tenant_id)
    .where(Agent.credential_hash == bindparam("digest"))
)
TOKEN_LOOKUP = (
    select(User, AuthSession.revoked_at, AuthSession.scope, Tenant)
    .join(AuthSession, AuthSession.user_id == User.id)
    .join(Tenant, Tenant.id == User.tenant_id)
    .where(User.id == bindparam("user_id"), AuthSession.id == bindparam("session_id"))
)
API_KEY_LOOKUP = (
    select(ApiKey, User, Tenant.plan, Tenant.daily_quota, Tenant.is_active)
    .join(User, User.id == ApiKey.user_id)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.key_hash == bindparam("digest"))
)
VERIFIED_TOKENS = 4096  # signatures remembered (see Authenticator._claims)


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
    def __init__(self, tokens: Tokens, limiter: RateLimiter, sessions: async_sessionmaker[AsyncSession],
                 epoch: Epoch | None = None) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.sessions = sessions
        self.callers = CallerCache(epoch)
        self._touching: set[str] = set()  # keys whose last_used_at this process is recording right now
        self._verified: dict[str, TokenClaims] = {}

    async def authenticate(self, request: Request) -> Principal:
        credential = extract_credential(request)
        if not credential:
            await self._charge_anonymous(request)
            raise AppError(401, "Authentication required", headers={"WWW-Authenticate": "Bearer"})
        if looks_like_jwt(credential):
            principal = await self._from_token(request, credential)
        elif AGENT_MARKER in credential:
            principal = await self._from_agent(request_session(request), credential)
        else:
            principal = await self._from_api_key(request, credential)
        if principal is None:
            await self._charge_anonymous(request)
            raise AppError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        # Charged before any refusal, so a 403 carries the caller's budget and counts against it too.
        await self._charge(request, principal)
        if principal.mfa_setup_only and not _mfa_setup_path(request.url.path):
            raise AppError(403, "Two-factor enrolment is required before using the API", code="MFA_SETUP_REQUIRED")
        if principal.kind == "agent" and request.url.path not in AGENT_PATHS:
            raise AppError(403, "An agent credential may only send reports and heartbeats")
        return principal

    async def _from_agent(self, session: AsyncSession, credential: str) -> Principal | None:
        """An enrolled agent. Its device and tenant are loaded into the session too: the report and
        heartbeat routes find them there without another query."""
        if len(credential) > 120:
            return None
        digest = secret_digest(credential)
        row = (await session.execute(AGENT_LOOKUP, {"digest": digest})).first()
        if row is None:
            return None
        agent, device, tenant = row
        if not same(agent.credential_hash, digest) or agent.revoked_at is not None or not tenant.is_active:
            return None
        keep_loaded(session, agent, device, tenant)
        return Principal(
            kind="agent",
            user_id=device.user_id or "",
            tenant_id=agent.tenant_id,
            role="agent",
            permissions=role_permissions("agent"),
            agent_id=agent.id,
            device_id=agent.device_id,
            rate_key="agent:" + agent.id,
            rate_tier=rate_tier("agent"),
            plan=tenant.plan,
            daily_quota=tenant.daily_quota,
        )

    def _claims(self, token: str) -> TokenClaims | None:
        """The access token's claims. A token's signature and claims never change, so a verified one
        is remembered (bounded, oldest forgotten first) and only its expiry is checked again; whether
        its session is still valid is read from the database on every request."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self.tokens.decode(token, "access")
            if claims is None:
                return None
            if len(self._verified) >= VERIFIED_TOKENS:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        elif claims.expires_at <= time.time():
            del self._verified[token]
            return None
        return claims

    async def _from_token(self, request: Request, token: str) -> Principal | None:
        claims = self._claims(token)
        if claims is None:
            return None
        # The epoch is read before the database: a change committed after this read moves it, so an
        # entry made from an older read can never be taken for a newer one.
        epoch = await self.callers.now()
        cached = self.callers.get(token, epoch)
        if cached is not None:
            remember_caller(request, cached, hit=True)
            return cached.principal
        session = request_session(request)
        row = (
            await session.execute(TOKEN_LOOKUP, {"user_id": claims.subject, "session_id": claims.session_id})
        ).first()
        if row is None:
            return None
        user, revoked_at, scope, tenant = row
        if revoked_at is not None or not user.is_active or not tenant.is_active:
            return None
        if user.tenant_id != claims.tenant_id or scope != claims.scope:
            return None
        keep_loaded(session, user, tenant)
        principal = Principal(
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
            plan=tenant.plan,
            daily_quota=tenant.daily_quota,
            mfa_setup_only=claims.scope == "mfa_setup",
        )
        remember_caller(request, self.callers.put(token, epoch, principal, tenant=RowSnapshot(tenant)))
        return principal

    async def _from_api_key(self, request: Request, key: str) -> Principal | None:
        if len(key) > 100 or "_live_" not in key:
            return None
        digest = api_key_digest(key)
        epoch = await self.callers.now()
        now = utcnow()
        cached = self.callers.get(digest, epoch)
        if cached is not None:
            if cached.key_expires_at is not None and cached.key_expires_at <= now:
                return None
            remember_caller(request, cached)
            if cached.key_last_used_at is None or now - cached.key_last_used_at > LAST_USED_EVERY:
                cached.key_last_used_at = now
                await self._record_use(request_session(request), cached.principal.api_key_id or "", now)
            return cached.principal
        session = request_session(request)
        row = (await session.execute(API_KEY_LOOKUP, {"digest": digest})).first()
        if row is None:
            return None
        api_key, user, plan, quota, tenant_active = row
        if not same(api_key.key_hash, digest) or api_key.revoked_at is not None:
            return None
        if api_key.expires_at is not None and api_key.expires_at <= now:
            return None
        if not user.is_active or not tenant_active:
            return None
        keep_loaded(session, api_key, user)
        principal = Principal(
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
        last_used = api_key.last_used_at
        if last_used is None or now - last_used > LAST_USED_EVERY:
            last_used = now
            await self._record_use(session, api_key.id, now)
        caller = self.callers.put(digest, epoch, principal, key_expires_at=api_key.expires_at,
                                  key_last_used_at=last_used)
        remember_caller(request, caller)
        return principal

    async def _record_use(self, session: AsyncSession, key_id: str, now: datetime) -> None:
        """last_used_at, at most once a minute per key and process; a GET never writes otherwise."""
        if write_intent.get():
            # A writing request already holds SQLite's write lock: a second transaction would wait on it.
            await session.execute(touch_statement(key_id, now))
        elif key_id not in self._touching:  # concurrent requests of one key record it once
            self._touching.add(key_id)
            try:
                # End the request's read first: waiting for a second pooled connection while holding
                # one deadlocks once a burst of requests holds the whole pool. Loaded rows stay loaded.
                await session.commit()
                await self._touch(key_id)
            finally:
                self._touching.discard(key_id)

    async def _touch(self, key_id: str) -> None:
        # Its own short transaction, at most once a minute per key: a GET never writes otherwise.
        try:
            async with transaction(self.sessions) as tx:
                await tx.execute(touch_statement(key_id, utcnow()))
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


def touch_statement(key_id: str, now: datetime) -> Any:
    # Neutral: recording a key's use does not change who its caller is (auth/epoch.py).
    return (update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now)
            .execution_options(**{NEUTRAL: True}))


def keep_loaded(session: AsyncSession, *rows: object) -> None:
    """Hold the caller's rows for the request: the identity map is weak, and without this a route's
    `session.get(User, principal.user_id)` would read again what authentication has just read."""
    session.info["principal_rows"] = rows


def _mfa_setup_path(path: str) -> bool:
    return any(path.endswith(allowed) for allowed in MFA_SETUP_PATHS)

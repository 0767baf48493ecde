"""All SQL for enrolment tokens and agents. Tenant-owned rows go through core.tenancy.scoped().

Two look-ups are by secret digest and unscoped by nature: the token or credential is what names
the tenant (like an API key), so there is no caller's tenant to scope by yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.agents.models import Agent, EnrollmentToken
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.devices.models import Device
from ronda.tenants.models import Tenant
from ronda.users.models import User

TOKEN_SORT_FIELDS: dict[str, Any] = {
    "created_at": EnrollmentToken.created_at,
    "expires_at": EnrollmentToken.expires_at,
    "label": EnrollmentToken.label,
    "uses": EnrollmentToken.uses,
}
TOKEN_ORDER = (EnrollmentToken.created_at.desc(), EnrollmentToken.id.desc())
TOKEN_SEARCH = (EnrollmentToken.label, EnrollmentToken.token_prefix)

AGENT_SORT_FIELDS: dict[str, Any] = {
    "enrolled_at": Agent.enrolled_at,
    "last_heartbeat_at": Agent.last_heartbeat_at,
    "hostname": Agent.hostname,
    "platform": Agent.platform,
    "agent_version": Agent.agent_version,
}
AGENT_ORDER = (Agent.enrolled_at.desc(), Agent.id.desc())
AGENT_SEARCH = (Agent.hostname, Agent.platform, Agent.agent_version, Agent.ip_address)


# --- enrolment tokens ------------------------------------------------------------------------


def token_usable_clause(now: datetime) -> ColumnElement[bool]:
    return and_(
        EnrollmentToken.revoked_at.is_(None),
        EnrollmentToken.expires_at > now,
        or_(EnrollmentToken.max_uses.is_(None), EnrollmentToken.uses < EnrollmentToken.max_uses),
    )


def token_list_statement(principal: Principal, *, active: bool | None, now: datetime) -> Select[Any]:
    statement = scoped(select(EnrollmentToken), EnrollmentToken, principal)
    if active is not None:
        clause = token_usable_clause(now)
        statement = statement.where(clause if active else not_(clause))
    return statement


async def get_token(
    session: AsyncSession, principal: Principal, token_id: str, *, for_update: bool = False
) -> EnrollmentToken | None:
    statement = scoped(select(EnrollmentToken).where(EnrollmentToken.id == token_id), EnrollmentToken, principal)
    if for_update:
        # Re-read under the lock: an object already in the session may hold what another process changed since.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).one_or_none()


async def token_by_digest(session: AsyncSession, digest: str) -> tuple[EnrollmentToken, Tenant] | None:
    row = (
        await session.execute(
            select(EnrollmentToken, Tenant)
            .join(Tenant, Tenant.id == EnrollmentToken.tenant_id)
            .where(EnrollmentToken.token_hash == digest)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def claim_token_use(session: AsyncSession, token: EnrollmentToken, now: datetime) -> bool:
    """Count one use, atomically: false when it was revoked, expired or used up meanwhile."""
    result = await session.execute(
        scoped(update(EnrollmentToken), EnrollmentToken, token.tenant_id)
        .where(EnrollmentToken.id == token.id, token_usable_clause(now))
        .values(uses=EnrollmentToken.uses + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def user_in_tenant(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    statement = scoped(select(User.id).where(User.id == user_id), User, tenant_id)
    return (await session.scalar(statement)) is not None


# --- agents ----------------------------------------------------------------------------------


def online_clause(now: datetime, offline_after: int) -> ColumnElement[bool]:
    return and_(
        Agent.revoked_at.is_(None),
        Agent.last_heartbeat_at.is_not(None),
        Agent.last_heartbeat_at > now - timedelta(seconds=offline_after),
    )


def agent_list_statement(
    principal: Principal,
    *,
    owner_id: str | None,
    device_id: str | None,
    revoked: bool | None,
    is_online: bool | None,
    now: datetime,
    offline_after: int,
) -> Select[Any]:
    """The tenant's agents; `owner_id` limits them to agents of that user's devices."""
    statement = scoped(select(Agent), Agent, principal)
    if owner_id is not None:
        owned = scoped(select(Device.id).where(Device.user_id == owner_id), Device, principal)
        statement = statement.where(Agent.device_id.in_(owned))
    if device_id is not None:
        statement = statement.where(Agent.device_id == device_id)
    if revoked is not None:
        statement = statement.where(Agent.revoked_at.is_not(None) if revoked else Agent.revoked_at.is_(None))
    if is_online is not None:
        clause = online_clause(now, offline_after)
        statement = statement.where(clause if is_online else not_(clause))
    return statement


async def get_agent(
    session: AsyncSession, principal: Principal, agent_id: str, *, for_update: bool = False
) -> Agent | None:
    statement = scoped(select(Agent).where(Agent.id == agent_id), Agent, principal)
    if for_update:
        # Re-read under the lock: an object already in the session may hold what another process changed since.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).one_or_none()


async def live_agents_of(session: AsyncSession, tenant_id: str, device_id: str) -> list[Agent]:
    statement = scoped(
        select(Agent).where(Agent.device_id == device_id, Agent.revoked_at.is_(None)), Agent, tenant_id
    )
    return list((await session.scalars(statement)).all())


async def count_live_agents(session: AsyncSession, tenant_id: str, device_id: str, exclude_id: str) -> int:
    statement = scoped(
        select(func.count()).select_from(Agent).where(
            Agent.device_id == device_id, Agent.revoked_at.is_(None), Agent.id != exclude_id
        ),
        Agent,
        tenant_id,
    )
    return int(await session.scalar(statement) or 0)


async def record_heartbeat(session: AsyncSession, agent: Agent, now: datetime, agent_version: str | None) -> None:
    values: dict[str, Any] = {"last_heartbeat_at": now}
    if agent_version and agent_version != agent.agent_version:
        values["agent_version"] = agent_version
    await session.execute(
        scoped(update(Agent), Agent, agent.tenant_id).where(Agent.id == agent.id).values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        scoped(update(Device), Device, agent.tenant_id).where(Device.id == agent.device_id)
        .values(last_seen=now, is_online=True, updated_at=Device.updated_at)  # a heartbeat is not an edit
        .execution_options(synchronize_session=False)
    )

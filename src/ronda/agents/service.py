"""Agent rules: enrolment tokens, enrolment, heartbeats, the agent list and revocation.

Flushes, never commits. A token is `<prefix>_enroll_` + 32 hex and an agent credential
`<prefix>_agent_` + 48 hex; both are stored only as SHA-256 digests and shown once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.agents import repository
from ronda.agents.models import Agent, EnrollmentToken
from ronda.agents.schemas import (
    AgentEnroll,
    AgentEnrolled,
    AgentRead,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenRead,
    HeartbeatAck,
)
from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.config import Settings
from ronda.core.errors import AppError
from ronda.core.ids import new_id
from ronda.core.pagination import ListParams, Page, apply_search, apply_sort, fetch_page
from ronda.core.principal import Principal
from ronda.core.security import same, secret_digest
from ronda.core.timeutil import as_utc, utcnow
from ronda.devices import repository as devices
from ronda.devices.models import Device
from ronda.devices.schemas import normalize_serial

PREFIX_HEX_CHARS = 8
REPORT_INTERVAL = 900  # seconds: the contract's "every 15 minutes"
BAD_TOKEN = "Invalid, expired, revoked or used-up enrolment token"


def heartbeat_interval(settings: Settings) -> int:
    """A third of the offline threshold, so two heartbeats may be lost before a device reads offline."""
    return max(5, settings.agent_offline_after // 3)


def mint_token(prefix: str) -> str:
    return f"{prefix}_enroll_{secrets.token_hex(16)}"


def mint_credential(prefix: str) -> str:
    return f"{prefix}_agent_{secrets.token_hex(24)}"


def _shown(secret: str, marker: str) -> str:
    head, _, tail = secret.partition(marker)
    return f"{head}{marker}{tail[:PREFIX_HEX_CHARS]}"


# --- tokens ------------------------------------------------------------------------------------


def token_active(token: EnrollmentToken, now: datetime) -> bool:
    expires = as_utc(token.expires_at)
    return (
        token.revoked_at is None
        and expires is not None
        and expires > now
        and (token.max_uses is None or token.uses < token.max_uses)
    )


def token_read(token: EnrollmentToken, now: datetime) -> EnrollmentTokenRead:
    return EnrollmentTokenRead(
        id=token.id, token_prefix=token.token_prefix, label=token.label, expires_at=token.expires_at,
        max_uses=token.max_uses, uses=token.uses, owner_user_id=token.owner_user_id, site_id=token.site_id,
        created_by=token.created_by, created_at=token.created_at, revoked_at=token.revoked_at,
        is_active=token_active(token, now),
    )


async def create_token(
    session: AsyncSession, principal: Principal, body: EnrollmentTokenCreate, actor: Actor, prefix: str
) -> EnrollmentTokenCreated:
    if body.owner_user_id is not None and not await repository.user_in_tenant(
        session, principal.tenant_id, body.owner_user_id
    ):
        raise AppError(400, "owner_user_id is not a user of your tenant",
                       details=[{"field": "owner_user_id", "location": "body", "reason": "no such user"}])
    secret = mint_token(prefix)
    now = utcnow()
    token = EnrollmentToken(
        id=new_id("aet"), tenant_id=principal.tenant_id, created_by=principal.user_id or None,
        owner_user_id=body.owner_user_id, site_id=body.site_id, label=body.label, token_hash=secret_digest(secret),
        token_prefix=_shown(secret, "_enroll_"), max_uses=body.max_uses, uses=0,
        expires_at=now + timedelta(hours=body.expires_in_hours), created_at=now,
    )
    session.add(token)
    await session.flush()
    await audit.record(session, actor, "agent.token_created", resource_type="enrollment_token", resource_id=token.id,
                       metadata={"label": token.label, "token_prefix": token.token_prefix,
                                 "expires_at": token.expires_at, "max_uses": token.max_uses,
                                 "owner_user_id": token.owner_user_id, "site_id": token.site_id})
    return EnrollmentTokenCreated(**token_read(token, now).model_dump(), token=secret)


def token_statement(principal: Principal, params: ListParams, *, active: bool | None) -> Select[Any]:
    statement = repository.token_list_statement(principal, active=active, now=utcnow())
    statement = apply_search(statement, params.search, repository.TOKEN_SEARCH)
    return apply_sort(statement, params.sort, repository.TOKEN_SORT_FIELDS, repository.TOKEN_ORDER)


async def list_tokens(session: AsyncSession, statement: Select[Any], params: ListParams) -> Page[EnrollmentTokenRead]:
    rows, total = await fetch_page(session, statement, params)
    now = utcnow()
    return Page[EnrollmentTokenRead](data=[token_read(t, now) for t in rows], meta=params.meta(total))


def token_csv_columns() -> list[tuple[str, Callable[[EnrollmentToken], Any]]]:
    now = utcnow()
    return [
        ("id", lambda t: t.id), ("token_prefix", lambda t: t.token_prefix), ("label", lambda t: t.label),
        ("expires_at", lambda t: t.expires_at), ("max_uses", lambda t: t.max_uses), ("uses", lambda t: t.uses),
        ("owner_user_id", lambda t: t.owner_user_id), ("site_id", lambda t: t.site_id),
        ("created_by", lambda t: t.created_by), ("created_at", lambda t: t.created_at),
        ("revoked_at", lambda t: t.revoked_at), ("is_active", lambda t: token_active(t, now)),
    ]


async def revoke_token(session: AsyncSession, principal: Principal, token_id: str, actor: Actor) -> EnrollmentTokenRead:
    token = await repository.get_token(session, principal, token_id, for_update=True)
    if token is None:
        raise AppError(404, "Enrolment token not found")
    if token.revoked_at is not None:
        raise AppError(409, "Enrolment token is already revoked")
    now = utcnow()
    token.revoked_at = now
    await session.flush()
    await audit.record(session, actor, "agent.token_revoked", resource_type="enrollment_token", resource_id=token.id,
                       metadata={"label": token.label, "token_prefix": token.token_prefix, "uses": token.uses})
    return token_read(token, now)


# --- enrolment ---------------------------------------------------------------------------------


async def _usable_token(session: AsyncSession, secret: str, now: datetime) -> EnrollmentToken:
    if "_enroll_" not in secret or len(secret) > 100:
        raise AppError(401, BAD_TOKEN)
    digest = secret_digest(secret)
    found = await repository.token_by_digest(session, digest)
    if found is None:
        raise AppError(401, BAD_TOKEN)
    token, tenant = found
    if not same(token.token_hash, digest) or not tenant.is_active or not token_active(token, now):
        raise AppError(401, BAD_TOKEN)
    # Counted atomically: of two enrolments racing for the last use, one gets 401.
    if not await repository.claim_token_use(session, token, now):
        raise AppError(401, BAD_TOKEN)
    return token


async def _enrolled_device(
    session: AsyncSession, token: EnrollmentToken, body: AgentEnroll, now: datetime
) -> tuple[Device, bool, dict[str, Any]]:
    """The device this machine is (merge order: serial, MAC, hostname within the token's site), or a new one."""
    serial = normalize_serial(body.serial_number)
    device = await devices.find_match(session, token.tenant_id, serial_number=serial, mac=body.mac,
                                      hostname=body.hostname, site_id=token.site_id)
    if device is None:
        device = Device(
            id=new_id("dev"), tenant_id=token.tenant_id, site_id=token.site_id, user_id=token.owner_user_id,
            device_name=body.hostname, hostname=body.hostname, serial_number=serial, device_type="unknown",
            os_type=body.os_type, os_version=body.os_version, mac=body.mac, tags=[], open_ports=[],
            sources=["agent"], managed=True, is_online=False, first_seen=now, last_seen=now,
            compliance_status="unknown", compliance_checks={}, created_at=now, updated_at=now,
        )
        session.add(device)
        await session.flush()  # the agent row refers to it (no ORM relationship orders the inserts)
        return device, True, {}
    wanted: dict[str, Any] = {
        "hostname": body.hostname, "serial_number": serial, "os_type": body.os_type, "os_version": body.os_version,
        "mac": body.mac, "user_id": token.owner_user_id, "managed": True,
    }
    if "agent" not in (device.sources or []):
        wanted["sources"] = [*(device.sources or []), "agent"]
    changes: dict[str, Any] = {}
    for name, value in wanted.items():
        if value is not None and getattr(device, name) != value:
            old = getattr(device, name)
            changes[name] = {"old": list(old) if isinstance(old, list) else old,
                             "new": list(value) if isinstance(value, list) else value}
            setattr(device, name, value)
    device.last_seen = now
    return device, False, changes


async def enroll(
    session: AsyncSession, body: AgentEnroll, actor: Actor, settings: Settings
) -> AgentEnrolled:
    """Token plus host facts -> an agent credential bound to one device (found by the merge rules, or new)."""
    now = utcnow()
    token = await _usable_token(session, body.token, now)
    device, created, changes = await _enrolled_device(session, token, body, now)
    replaced = [] if created else await repository.live_agents_of(session, token.tenant_id, device.id)
    for old in replaced:  # a reinstalled agent replaces the one before it: one live credential per device
        old.revoked_at = now
    credential = mint_credential(settings.api_key_prefix)
    agent = Agent(
        id=new_id("agt"), tenant_id=token.tenant_id, device_id=device.id, enrollment_token_id=token.id,
        credential_hash=secret_digest(credential), credential_prefix=_shown(credential, "_agent_"),
        hostname=body.hostname, platform=body.platform, agent_version=body.agent_version,
        ip_address=actor.ip_address, enrolled_at=now, last_heartbeat_at=now,
    )
    session.add(agent)
    await session.flush()
    agent_actor = actor.but(actor_type="agent", actor_id=agent.id, tenant_id=token.tenant_id)
    if created:
        await audit.record(session, agent_actor, "device.created", resource_type="device", resource_id=device.id,
                           metadata={"source": "agent", "fields": {"hostname": device.hostname,
                                     "serial_number": device.serial_number, "os_type": device.os_type,
                                     "os_version": device.os_version, "mac": device.mac, "user_id": device.user_id,
                                     "site_id": device.site_id}})
    elif changes:
        await audit.record(session, agent_actor, "device.updated", resource_type="device", resource_id=device.id,
                           metadata={"source": "agent", "changes": changes})
    await audit.record(session, agent_actor, "agent.enrolled", resource_type="agent", resource_id=agent.id,
                       metadata={"device_id": device.id, "hostname": agent.hostname, "platform": agent.platform,
                                 "agent_version": agent.agent_version, "enrollment_token_id": token.id,
                                 "token_prefix": token.token_prefix, "credential_prefix": agent.credential_prefix,
                                 "new_device": created, "replaced_agent_ids": [a.id for a in replaced]})
    return AgentEnrolled(
        agent_id=agent.id, device_id=device.id, credential=credential, tenant_id=token.tenant_id,
        heartbeat_interval=heartbeat_interval(settings), report_interval=REPORT_INTERVAL,
    )


# --- running agents ----------------------------------------------------------------------------


async def heartbeat(
    session: AsyncSession, principal: Principal, agent_version: str | None, settings: Settings
) -> HeartbeatAck:
    now = utcnow()
    agent = await session.get(Agent, principal.agent_id) if principal.agent_id else None  # loaded with the credential
    if agent is None or agent.tenant_id != principal.tenant_id:
        raise AppError(401, "Invalid or expired credentials")
    last_report = as_utc(agent.last_report_at)
    report_due = last_report is None or now - last_report >= timedelta(seconds=REPORT_INTERVAL)
    await repository.record_heartbeat(session, agent, now, agent_version)
    return HeartbeatAck(status="ok", server_time=now, report_due=report_due,
                        heartbeat_interval=heartbeat_interval(settings), report_interval=REPORT_INTERVAL)


def agent_online(agent: Agent, now: datetime, offline_after: int) -> bool:
    beat = as_utc(agent.last_heartbeat_at)
    return agent.revoked_at is None and beat is not None and beat > now - timedelta(seconds=offline_after)


def agent_read(agent: Agent, now: datetime, offline_after: int) -> AgentRead:
    return AgentRead(
        id=agent.id, device_id=agent.device_id, hostname=agent.hostname, platform=agent.platform,
        agent_version=agent.agent_version, ip_address=agent.ip_address, enrolled_at=agent.enrolled_at,
        last_heartbeat_at=agent.last_heartbeat_at, last_report_at=agent.last_report_at,
        is_online=agent_online(agent, now, offline_after), revoked=agent.revoked_at is not None,
        revoked_at=agent.revoked_at,
    )


def agent_statement(
    principal: Principal, params: ListParams, settings: Settings, *, device_id: str | None, revoked: bool | None,
    is_online: bool | None,
) -> Select[Any]:
    """The `user` role sees the agents of its own devices; other readers every agent of the tenant."""
    statement = repository.agent_list_statement(
        principal, owner_id=principal.user_id if principal.role == "user" else None, device_id=device_id,
        revoked=revoked, is_online=is_online, now=utcnow(), offline_after=settings.agent_offline_after,
    )
    statement = apply_search(statement, params.search, repository.AGENT_SEARCH)
    return apply_sort(statement, params.sort, repository.AGENT_SORT_FIELDS, repository.AGENT_ORDER)


async def list_agents(
    session: AsyncSession, statement: Select[Any], params: ListParams, settings: Settings
) -> Page[AgentRead]:
    rows, total = await fetch_page(session, statement, params)
    now = utcnow()
    return Page[AgentRead](data=[agent_read(a, now, settings.agent_offline_after) for a in rows],
                           meta=params.meta(total))


def agent_csv_columns(settings: Settings) -> list[tuple[str, Callable[[Agent], Any]]]:
    now = utcnow()
    return [
        ("id", lambda a: a.id), ("device_id", lambda a: a.device_id), ("hostname", lambda a: a.hostname),
        ("platform", lambda a: a.platform), ("agent_version", lambda a: a.agent_version),
        ("ip_address", lambda a: a.ip_address), ("enrolled_at", lambda a: a.enrolled_at),
        ("last_heartbeat_at", lambda a: a.last_heartbeat_at), ("last_report_at", lambda a: a.last_report_at),
        ("is_online", lambda a: agent_online(a, now, settings.agent_offline_after)),
        ("revoked_at", lambda a: a.revoked_at),
    ]


async def revoke_agent(
    session: AsyncSession, principal: Principal, agent_id: str, actor: Actor, settings: Settings
) -> AgentRead:
    """The credential stops working at once; the device stays, unmanaged unless another agent lives on it."""
    agent = await repository.get_agent(session, principal, agent_id, for_update=True)
    if agent is None:
        raise AppError(404, "Agent not found")
    if agent.revoked_at is not None:
        raise AppError(409, "Agent is already revoked")
    now = utcnow()
    agent.revoked_at = now
    await session.flush()
    others = await repository.count_live_agents(session, principal.tenant_id, agent.device_id, agent.id)
    device = await devices.get(session, principal, agent.device_id, for_update=True)
    if device is not None and others == 0 and device.managed:
        device.managed = False
        device.is_online = False  # no agent vouches for it any more; a scan may say otherwise
        await session.flush()
    await audit.record(session, actor, "agent.revoked", resource_type="agent", resource_id=agent.id,
                       metadata={"device_id": agent.device_id, "hostname": agent.hostname,
                                 "credential_prefix": agent.credential_prefix, "device_managed": others > 0})
    return agent_read(agent, now, settings.agent_offline_after)

"""The presence sweeper (routes.BACKGROUND): every RONDA_SWEEP_INTERVAL seconds, in every server process.

- An agent whose last heartbeat is older than RONDA_AGENT_OFFLINE_AFTER has gone offline: `agent.offline`
  is published once per silence (an AgentOfflineMark records the heartbeat it was announced for; the
  mark's conditional upsert lets exactly one process win), and its device, if nothing else has seen
  it since, goes offline too (`device.offline`).
- A device whose last report is older than its tenant's `stale_after_days` becomes `unknown`
  (history row, audit record and `device.compliance_changed`, as any other status change); a
  conditional UPDATE lets exactly one process make each change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import and_, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from ronda.agents.models import Agent
from ronda.alerts.models import AgentOfflineMark
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.events import EventBus
from ronda.core.tenancy import scoped
from ronda.core.timeutil import iso, utcnow
from ronda.devices import posture
from ronda.devices.models import Device
from ronda.routes import Stop
from ronda.tenants.models import Tenant

log = logging.getLogger("ronda.sweeper")
BATCH = 200
MIN_STALE = timedelta(days=1)  # the shortest stale_after_days a tenant may set
SYSTEM = Actor(actor_type="system", actor_email="system")


async def _mark(session: AsyncSession, agent: Agent, now: datetime) -> bool:
    """Record that this silence is announced; false if another process (or an earlier round) did."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    base = insert(AgentOfflineMark).values(
        agent_id=agent.id, tenant_id=agent.tenant_id, heartbeat_at=agent.last_heartbeat_at, marked_at=now
    )
    statement = base.on_conflict_do_update(
        index_elements=[AgentOfflineMark.agent_id],
        set_={"heartbeat_at": base.excluded.heartbeat_at, "marked_at": now},
        where=AgentOfflineMark.heartbeat_at != base.excluded.heartbeat_at,
    ).returning(AgentOfflineMark.agent_id)
    return (await session.execute(statement)).first() is not None


async def sweep_agents(sessions: async_sessionmaker[AsyncSession], bus: EventBus | None, offline_after: int,
                       now: datetime | None = None) -> int:
    """Announce agents that went silent; returns how many."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=offline_after)
    announced = 0
    while True:
        async with events.transaction(sessions, bus) as session:
            already = exists().where(AgentOfflineMark.agent_id == Agent.id,
                                     AgentOfflineMark.heartbeat_at == Agent.last_heartbeat_at)
            agents = list((await session.scalars(
                select(Agent).where(Agent.revoked_at.is_(None), Agent.last_heartbeat_at.is_not(None),
                                    Agent.last_heartbeat_at < cutoff, ~already).order_by(Agent.id).limit(BATCH)
            )).all())
            for agent in agents:
                if not await _mark(session, agent, now):
                    continue
                announced += 1
                events.queue(session, "agent.offline", agent.tenant_id, {
                    "agent_id": agent.id, "device_id": agent.device_id,
                    "last_heartbeat_at": iso(agent.last_heartbeat_at),
                })
                gone = await session.execute(
                    scoped(update(Device), Device, agent.tenant_id)
                    .where(Device.id == agent.device_id, Device.is_online.is_(True), Device.last_seen < cutoff)
                    .values(is_online=False, updated_at=Device.updated_at)
                    .returning(Device.site_id).execution_options(synchronize_session=False)
                )
                row = gone.first()
                if row is not None:
                    events.queue(session, "device.offline", agent.tenant_id,
                                 {"device_id": agent.device_id, "site_id": row[0]})
        if len(agents) < BATCH:
            return announced


async def sweep_stale_devices(sessions: async_sessionmaker[AsyncSession], bus: EventBus | None,
                              now: datetime | None = None) -> int:
    """Turn devices whose last report is older than their tenant's policy allows into `unknown`."""
    now = now or utcnow()
    changed = 0
    # Only tenants with a device that could be stale under the shortest policy allowed (a day).
    candidates = select(Device.tenant_id).where(
        Device.compliance_status != "unknown", Device.last_report_at < now - MIN_STALE
    ).distinct()
    async with sessions() as reader:
        tenants = list((await reader.execute(select(Tenant.id, Tenant.compliance_policy).where(
            Tenant.is_active.is_(True), Tenant.id.in_(candidates)))).all())
    for tenant_id, policy_raw in tenants:
        stale = now - timedelta(days=posture.Policy.of(policy_raw).stale_after_days)
        while True:
            async with events.transaction(sessions, bus) as session:
                devices = list((await session.scalars(scoped(
                    select(Device).where(Device.compliance_status != "unknown", Device.last_report_at < stale),
                    Device, tenant_id).order_by(Device.id).limit(BATCH))).all())
                for device in devices:
                    changed += await _make_unknown(session, device, now)
            if len(devices) < BATCH:
                break
    return changed


async def _make_unknown(session: AsyncSession, device: Device, now: datetime) -> int:
    old_status, old_score = device.compliance_status, device.compliance_score
    result = await session.execute(
        scoped(update(Device), Device, device.tenant_id)
        .where(and_(Device.id == device.id, Device.compliance_status == old_status))
        .values(compliance_status="unknown", updated_at=Device.updated_at)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:  # another process got there first
        return 0
    set_committed_value(device, "compliance_status", "unknown")
    session.add(posture.history_row(device, now))
    await posture.announce(session, device, posture.Change(old_status, old_score),
                           SYSTEM.but(tenant_id=device.tenant_id))
    return 1


async def sweep(app: FastAPI) -> None:
    sessions = app.state.sessions
    bus = app.state.events
    await sweep_agents(sessions, bus, app.state.runtime.settings.agent_offline_after)
    await sweep_stale_devices(sessions, bus)


async def start(app: FastAPI) -> Stop:
    interval = app.state.runtime.settings.sweep_interval

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await sweep(app)
            except asyncio.CancelledError:
                raise
            except Exception:  # a busy or unreachable database: try again next round
                log.warning("presence sweep failed; retrying in %.1fs", interval, exc_info=True)

    task = asyncio.create_task(loop(), name="ronda-presence-sweeper")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop

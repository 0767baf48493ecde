"""The overdue-review sweeper: flips lapsed services to needs_review and announces each lapse once.

Every `service_review_sweep_interval` seconds, each service whose next review date has passed and
whose lapse was not yet announced gets its stored status re-decided, a `service.review_overdue`
audit record and bus event {service_id, name, owner_id, next_review_date}, and
`overdue_notified_for = next_review_date` — the persisted "already published" mark, so a lapse is
announced once per due date, across restarts and processes (rows are locked while claimed). A new
review or a new next_review_date opens a new period. A service never scheduled (no next review
date) is `needs_review` from the start and has no lapse to announce.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from fastapi import FastAPI
from sqlalchemy import or_, select

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.db import transaction
from ronda.core.events import EventBus
from ronda.core.runtime import Runtime
from ronda.core.tenancy import scoped
from ronda.services import status
from ronda.services.clock import now_of
from ronda.services.models import Service
from ronda.services.policy import ServicePolicy
from ronda.tenants.models import Tenant

log = logging.getLogger("ronda.services.overdue")
EVENT = "service.review_overdue"


def _unannounced(today: date) -> Any:
    return (Service.next_review_date < today) & or_(
        Service.overdue_notified_for.is_(None), Service.overdue_notified_for != Service.next_review_date)


async def sweep(
    runtime: Runtime, bus: EventBus | None, today: date, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    """One round as of `today` (over one tenant when `tenant_id` is given); returns the events
    published, one per newly lapsed service."""
    if tenant_id is not None:
        tenant_ids = [tenant_id]
    else:
        async with transaction(runtime.sessions, write=False) as session:
            # A system job across tenants: find which tenants have work, then work tenant by tenant.
            tenant_ids = list((await session.scalars(
                select(Service.tenant_id).where(_unannounced(today)).distinct())).all())
    published: list[dict[str, Any]] = []
    for tenant in tenant_ids:
        published.extend(await _sweep_tenant(runtime, bus, today, tenant))
    if published:
        log.info("services: %d reviews newly overdue", len(published))
    return published


async def _sweep_tenant(runtime: Runtime, bus: EventBus | None, today: date, tenant_id: str) -> list[dict[str, Any]]:
    pending: list[dict[str, Any]] = []
    async with transaction(runtime.sessions) as session:
        tenant = await session.get(Tenant, tenant_id)
        policy = ServicePolicy.of(tenant.compliance_policy if tenant is not None else None)
        lapsed = (await session.scalars(
            scoped(select(Service), Service, tenant_id).where(_unannounced(today))
            .order_by(Service.id).with_for_update())).all()
        actor = Actor(actor_type="system", tenant_id=tenant_id)
        for service in lapsed:
            due = service.next_review_date
            if due is None:  # not selected by _unannounced(); keeps the type checker informed
                continue
            service.overdue_notified_for = due
            status.refresh(service, policy, today)
            data = {"service_id": service.id, "name": service.name, "owner_id": service.owner_id,
                    "next_review_date": due.isoformat()}
            await audit.record(session, actor, EVENT, resource_type="service", resource_id=service.id,
                               metadata={**data, "status": service.status, "days_overdue": (today - due).days})
            pending.append(data)
        await session.flush()
    # Published only once the claim committed.
    if bus is not None:
        for data in pending:
            await bus.publish(EVENT, tenant_id, data)
    return [{"tenant_id": tenant_id, **data} for data in pending]


async def start(app: FastAPI) -> Callable[[], Awaitable[None]]:
    runtime: Runtime = app.state.runtime
    interval = runtime.settings.service_review_sweep_interval

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await sweep(runtime, getattr(app.state, "events", None), now_of(app).date())
            except Exception:
                log.exception("service review sweep failed; retrying in %s s", interval)

    task = asyncio.create_task(loop(), name="ronda-service-reviews")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop

"""All SQL for webhooks. Request-side statements go through tenancy.scoped; the dispatcher's
statements work across tenants by design (it serves every tenant) and name rows by id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.webhooks.models import Webhook, WebhookDelivery

HOOK_ORDER = (Webhook.created_at.desc(), Webhook.id.desc())
HOOK_SORT: dict[str, Any] = {"created_at": Webhook.created_at, "url": Webhook.url,
                             "last_delivery_at": Webhook.last_delivery_at,
                             "consecutive_failures": Webhook.consecutive_failures}
HOOK_SEARCH = (Webhook.url, Webhook.description)
DELIVERY_ORDER = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
DELIVERY_SORT: dict[str, Any] = {"created_at": WebhookDelivery.created_at, "status": WebhookDelivery.status,
                                 "next_attempt_at": WebhookDelivery.next_attempt_at,
                                 "duration_ms": WebhookDelivery.duration_ms, "attempt": WebhookDelivery.attempt}


def hooks_statement(principal: Principal, active: bool | None) -> Select[Any]:
    statement = scoped(select(Webhook), Webhook, principal)
    if active is not None:
        statement = statement.where(Webhook.active.is_(active))
    return statement


async def get_hook(session: AsyncSession, principal: Principal, hook_id: str) -> Webhook | None:
    statement = scoped(select(Webhook).where(Webhook.id == hook_id), Webhook, principal)
    return (await session.scalars(statement)).one_or_none()


async def add(session: AsyncSession, item: Webhook | WebhookDelivery) -> None:
    session.add(item)
    await session.flush()


async def delete_hook(session: AsyncSession, principal: Principal, hook_id: str) -> None:
    # Deliveries first: not every database enforces ON DELETE CASCADE on every connection.
    await session.execute(scoped(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id),
                                 WebhookDelivery, principal))
    await session.execute(scoped(delete(Webhook).where(Webhook.id == hook_id), Webhook, principal))


def deliveries_statement(principal: Principal, hook_id: str, status: str | None, event: str | None) -> Select[Any]:
    statement = scoped(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id),
                       WebhookDelivery, principal)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if event is not None:
        statement = statement.where(WebhookDelivery.event_type == event)
    return statement


async def active_hooks(session: AsyncSession, tenant_id: str) -> list[Webhook]:
    statement = scoped(select(Webhook).where(Webhook.active.is_(True)), Webhook, tenant_id)
    return list((await session.scalars(statement)).all())


# --- the dispatcher (every tenant) ----------------------------------------------------------------


def _claimable(now: datetime) -> ColumnElement[bool]:
    return (WebhookDelivery.status == "pending") & or_(
        WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now
    )


async def due_ids(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    statement = (
        select(WebhookDelivery.id)
        .where(_claimable(now), WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def claim(session: AsyncSession, delivery_id: str, now: datetime, until: datetime, token: str) -> bool:
    """Take one due delivery for this process. The WHERE re-checks the claim inside the UPDATE, so of
    two processes racing for the row exactly one sees a row count of 1."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, _claimable(now), WebhookDelivery.next_attempt_at <= now)
        .values(claimed_until=until, claim_token=token)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def claimed(session: AsyncSession, delivery_id: str, token: str) -> WebhookDelivery | None:
    """The delivery, if this process's claim on it still stands."""
    statement = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                              WebhookDelivery.claim_token == token)
    return (await session.scalars(statement)).one_or_none()


async def hook_by_id(session: AsyncSession, hook_id: str) -> Webhook | None:
    return await session.get(Webhook, hook_id)


async def count_failure(session: AsyncSession, hook_id: str, now: datetime, failing: bool) -> bool:
    """One more failed attempt, counted in the database (two processes may fail at once); with
    `failing`, mark the hook failing. True when this call is what marked it."""
    values: dict[str, Any] = {"consecutive_failures": Webhook.consecutive_failures + 1,
                              "last_failure_at": now, "last_delivery_at": now}
    await session.execute(update(Webhook).where(Webhook.id == hook_id).values(**values)
                          .execution_options(synchronize_session=False))
    if not failing:
        return False
    result = await session.execute(update(Webhook).where(Webhook.id == hook_id, Webhook.failing_since.is_(None))
                                   .values(failing_since=now).execution_options(synchronize_session=False))
    return getattr(result, "rowcount", 0) == 1


async def count_success(session: AsyncSession, hook_id: str, now: datetime) -> None:
    await session.execute(
        update(Webhook).where(Webhook.id == hook_id)
        .values(consecutive_failures=0, failing_since=None, last_success_at=now, last_delivery_at=now)
        .execution_options(synchronize_session=False)
    )


async def prune(session: AsyncSession, before: datetime) -> int:
    """Forget finished deliveries created before `before` (pending ones stay, whatever their age)."""
    result = await session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.status != "pending", WebhookDelivery.created_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)

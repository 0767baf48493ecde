"""Webhook rules for the API: create (checked URL, known events, sealed secret), list, delete, test,
and the delivery log. Flushes, never commits (the request's unit of work does)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.config import Settings
from ronda.core.errors import AppError
from ronda.core.ids import new_id
from ronda.core.pagination import ListParams, Page, apply_search, apply_sort, fetch_page
from ronda.core.principal import Principal
from ronda.core.timeutil import iso, utcnow
from ronda.webhooks import repository, signing, url_safety
from ronda.webhooks.models import Webhook, WebhookDelivery
from ronda.webhooks.schemas import (
    ALL_EVENTS,
    KNOWN_EVENTS,
    TEST_EVENT,
    DeliveryAttempt,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
    WebhookUpdated,
)

MAX_ATTEMPTS = 5
# After the 1st, 2nd, 3rd and 4th failed attempt; the 5th failure ends the delivery.
RETRY_DELAYS = (30, 120, 600, 3600)


def status_of(hook: Webhook) -> str:
    if not hook.active:
        return "inactive"
    return "failing" if hook.failing_since is not None else "active"


def to_read(hook: Webhook) -> WebhookRead:
    return WebhookRead(
        id=hook.id, url=hook.url, events=list(hook.events or []), description=hook.description,
        active=hook.active, status=status_of(hook),  # type: ignore[arg-type]
        consecutive_failures=hook.consecutive_failures, failing_since=hook.failing_since,
        last_delivery_at=hook.last_delivery_at, last_success_at=hook.last_success_at,
        last_failure_at=hook.last_failure_at, created_at=hook.created_at,
    )


def delivery_to_read(item: WebhookDelivery) -> DeliveryRead:
    return DeliveryRead(
        id=item.id, webhook_id=item.webhook_id, event=item.event_type, event_id=item.event_id,
        status=item.status, attempt=item.attempt, max_attempts=MAX_ATTEMPTS,  # type: ignore[arg-type]
        status_code=item.status_code, duration_ms=item.duration_ms, error=item.error,
        next_attempt_at=item.next_attempt_at if item.status == "pending" else None,
        last_attempt_at=item.last_attempt_at, delivered_at=item.delivered_at, created_at=item.created_at,
        attempts=[DeliveryAttempt(**a) for a in item.attempts or []],
    )


def check_events(names: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(n.strip() for n in names))
    unknown = [n for n in wanted if n != ALL_EVENTS and n not in KNOWN_EVENTS]
    if unknown:
        raise AppError(
            400, f"Unknown events: {', '.join(unknown)}; known events: {ALL_EVENTS}, {', '.join(KNOWN_EVENTS)}",
            details=[{"field": "events", "location": "body", "reason": f"unknown event {n}",
                      "known": [ALL_EVENTS, *KNOWN_EVENTS]} for n in unknown],
        )
    return [ALL_EVENTS] if ALL_EVENTS in wanted else wanted


def wants(hook: Webhook, event_type: str) -> bool:
    events = hook.events or []
    return ALL_EVENTS in events or event_type in events


def new_delivery(
    hook: Webhook, event_id: str, event_type: str, occurred_at: datetime, data: dict[str, Any], due: datetime
) -> WebhookDelivery:
    """A pending delivery whose body is rendered now, once."""
    body = signing.render_body(event_id, event_type, occurred_at, hook.tenant_id, data)
    return WebhookDelivery(
        id=new_id("whd"), tenant_id=hook.tenant_id, webhook_id=hook.id, event_id=event_id, event_type=event_type,
        payload=body.decode(), status="pending", attempt=0, next_attempt_at=due, attempts=[], created_at=due,
    )


async def _check_url(url: str, settings: Settings) -> None:
    try:
        await url_safety.check_at_creation(url, settings.webhook_private_allowed)
    except url_safety.UnsafeURL as exc:
        raise AppError(400, f"Refused webhook URL: {exc}",
                       details=[{"field": "url", "location": "body", "reason": str(exc)}]) from None


async def create_hook(
    session: AsyncSession, principal: Principal, body: WebhookCreate, actor: Actor, settings: Settings
) -> WebhookCreated:
    events = check_events(body.events)
    await _check_url(body.url, settings)
    secret = body.secret or signing.new_secret()
    hook = Webhook(
        id=new_id("whk"), tenant_id=principal.tenant_id, created_by=principal.user_id, url=body.url, events=events,
        secret_encrypted=signing.SecretBox(settings.ensure_secret_key()).seal(secret),
        description=body.description, active=body.active, consecutive_failures=0, created_at=utcnow(),
    )
    await repository.add(session, hook)
    await audit.record(
        session, actor, "webhook.created", resource_type="webhook", resource_id=hook.id,
        metadata={"url": url_safety.redacted(hook.url), "events": events, "active": hook.active,
                  "generated": body.secret is None},
    )
    return WebhookCreated(**to_read(hook).model_dump(), secret=secret)


async def list_hooks(
    session: AsyncSession, principal: Principal, params: ListParams, active: bool | None
) -> Page[WebhookRead]:
    statement = apply_search(repository.hooks_statement(principal, active), params.search, repository.HOOK_SEARCH)
    statement = apply_sort(statement, params.sort, repository.HOOK_SORT, repository.HOOK_ORDER)
    rows, total = await fetch_page(session, statement, params)
    return Page[WebhookRead](data=[to_read(h) for h in rows], meta=params.meta(total))


async def _hook(session: AsyncSession, principal: Principal, hook_id: str) -> Webhook:
    hook = await repository.get_hook(session, principal, hook_id)
    if hook is None:
        raise AppError(404, "Webhook not found")
    return hook


async def get_hook(session: AsyncSession, principal: Principal, hook_id: str) -> WebhookRead:
    return to_read(await _hook(session, principal, hook_id))


async def update_hook(
    session: AsyncSession, principal: Principal, hook_id: str, body: WebhookUpdate, actor: Actor,
    settings: Settings,
) -> WebhookUpdated:
    """Only the fields sent change (model_fields_set); `description: null` clears the description."""
    hook = await _hook(session, principal, hook_id)
    given = body.model_fields_set
    if body.secret is not None and body.rotate_secret:
        raise AppError(400, "Send either secret or rotate_secret, not both",
                       details=[{"field": "secret", "location": "body", "reason": "conflicts with rotate_secret"}])
    changes: dict[str, Any] = {}
    for field in ("url", "events", "description", "active"):
        value = getattr(body, field)
        if field not in given:
            continue
        if value is None and field != "description":
            raise AppError(400, f"Invalid request: {field}: may not be null",
                           details=[{"field": field, "location": "body", "reason": "may not be null"}])
        if field == "events":
            value = check_events(value)
        if field == "url" and value != hook.url:
            await _check_url(value, settings)
        if getattr(hook, field) != value:
            shown = url_safety.redacted if field == "url" else (lambda v: v)
            changes[field] = {"old": shown(getattr(hook, field)), "new": shown(value)}
            setattr(hook, field, value)
    generated = signing.new_secret() if body.rotate_secret else None
    new_secret = body.secret or generated
    if new_secret is not None:
        hook.secret_encrypted = signing.SecretBox(settings.ensure_secret_key()).seal(new_secret)
    # A new address or a re-enabled hook starts with a clean record.
    if "url" in changes or changes.get("active", {}).get("new") is True:
        hook.consecutive_failures, hook.failing_since = 0, None
    await session.flush()
    await audit.record(session, actor, "webhook.updated", resource_type="webhook", resource_id=hook.id,
                       metadata={"changes": changes, "rotated": new_secret is not None})
    return WebhookUpdated(**to_read(hook).model_dump(), secret=generated)


async def delete_hook(session: AsyncSession, principal: Principal, hook_id: str, actor: Actor) -> WebhookRead:
    hook = await _hook(session, principal, hook_id)
    read = to_read(hook)
    await repository.delete_hook(session, principal, hook_id)
    await audit.record(session, actor, "webhook.deleted", resource_type="webhook", resource_id=hook_id,
                       metadata={"url": url_safety.redacted(read.url), "events": read.events})
    return read


async def send_test(
    session: AsyncSession, principal: Principal, hook_id: str, actor: Actor, now: datetime
) -> DeliveryRead:
    """Queue a `webhook.test` delivery, due at once; it is sent even to an inactive hook."""
    hook = await _hook(session, principal, hook_id)
    data = {"webhook_id": hook.id, "message": "Test delivery from Ronda", "requested_by": principal.user_id,
            "requested_at": iso(now)}
    delivery = new_delivery(hook, new_id("evt"), TEST_EVENT, now, data, now)
    await repository.add(session, delivery)
    await audit.record(session, actor, "webhook.tested", resource_type="webhook", resource_id=hook.id,
                       metadata={"delivery_id": delivery.id})
    return delivery_to_read(delivery)


async def list_deliveries(
    session: AsyncSession, principal: Principal, hook_id: str, params: ListParams,
    status: str | None, event: str | None,
) -> Page[DeliveryRead]:
    await _hook(session, principal, hook_id)
    statement = apply_sort(repository.deliveries_statement(principal, hook_id, status, event), params.sort,
                           repository.DELIVERY_SORT, repository.DELIVERY_ORDER)
    rows, total = await fetch_page(session, statement, params)
    return Page[DeliveryRead](data=[delivery_to_read(d) for d in rows], meta=params.meta(total))

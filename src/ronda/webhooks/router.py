"""Webhooks at /integrations/webhooks: create, list, get, delete, test, and each hook's delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Query, Request

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.webhooks import service
from ronda.webhooks.clock import clock_of
from ronda.webhooks.dispatcher import dispatcher_of
from ronda.webhooks.schemas import (
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
    WebhookUpdated,
)

router = domain_router(prefix="/integrations/webhooks", tags=["webhooks"])

ManagerDep = Annotated[Principal, Depends(require("webhooks_manage"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks webhooks_manage"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"description": "No such webhook in your tenant"}}


@router.post("", status_code=201, response_model=WebhookCreated, operation_id="webhooks_create",
             summary="Create a webhook (the signing secret is shown only in this response)",
             description="`url` must be http(s) and may not point at link-local or cloud-metadata addresses "
                         "(nor at private ones when RONDA_WEBHOOK_ALLOW_PRIVATE=off). Each delivery is a POST of "
                         "`{id, event, timestamp, tenant_id, data}` signed in `X-Ronda-Signature: sha256=<hex "
                         "HMAC-SHA256 of the body>`, with `X-Ronda-Event` and `X-Ronda-Delivery`; failures are "
                         "retried after 30 s, 2 min, 10 min and 1 h.",
             responses={**ERRORS, 201: {"description": "The new webhook and its secret, shown once"}})
async def create_webhook(
    body: WebhookCreate, principal: ManagerDep, session: SessionDep, runtime: RuntimeDep, actor: ActorDep
) -> WebhookCreated:
    return await service.create_hook(session, principal, body, actor, runtime.settings)


@router.get("", response_model=Page[WebhookRead], operation_id="webhooks_list",
            summary="List the tenant's webhooks (never their secrets)", responses=ERRORS,
            description="Sort by created_at, url, last_delivery_at or consecutive_failures (default -created_at); "
                        "`search` looks in url and description.")
async def list_webhooks(
    principal: ManagerDep, session: SessionDep, params: ListParamsDep,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) hooks")] = None,
) -> Page[WebhookRead]:
    return await service.list_hooks(session, principal, params, active)


@router.get("/{webhook_id}", response_model=WebhookRead, operation_id="webhooks_get",
            summary="One webhook and its delivery health", responses=ONE_ERRORS)
async def get_webhook(webhook_id: str, principal: ManagerDep, session: SessionDep) -> WebhookRead:
    return await service.get_hook(session, principal, webhook_id)


@router.patch("/{webhook_id}", response_model=WebhookUpdated, operation_id="webhooks_update",
              summary="Change some of a webhook's fields (url, events, description, active, secret)",
              description="A new url, or re-activating the hook, clears its failing state. `rotate_secret` "
                          "generates a new secret, returned only in this response.", responses=ONE_ERRORS)
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, principal: ManagerDep, session: SessionDep, runtime: RuntimeDep,
    actor: ActorDep,
) -> WebhookUpdated:
    return await service.update_hook(session, principal, webhook_id, body, actor, runtime.settings)


@router.delete("/{webhook_id}", response_model=WebhookRead, operation_id="webhooks_delete",
               summary="Delete a webhook and its pending deliveries", responses=ONE_ERRORS)
async def delete_webhook(webhook_id: str, principal: ManagerDep, session: SessionDep, actor: ActorDep) -> WebhookRead:
    return await service.delete_hook(session, principal, webhook_id, actor)


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryRead, operation_id="webhooks_test",
             summary="Send a test payload (event webhook.test); follow it in the delivery log",
             responses={**ONE_ERRORS, 202: {"description": "The queued delivery, sent within moments"}})
async def test_webhook(
    webhook_id: str, request: Request, background: BackgroundTasks, principal: ManagerDep, session: SessionDep,
    actor: ActorDep,
) -> DeliveryRead:
    delivery = await service.send_test(session, principal, webhook_id, actor, clock_of(request.app.state).now())
    dispatcher = dispatcher_of(request.app)
    if dispatcher is not None:
        background.add_task(dispatcher.wake)  # runs after the response, so after the commit
    return delivery


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryRead], operation_id="webhooks_deliveries",
            summary="A webhook's delivery log, newest first: status code, duration, attempts, next retry",
            description="Sort by created_at, status, next_attempt_at, duration_ms or attempt.", responses=ONE_ERRORS)
async def list_deliveries(
    webhook_id: str, principal: ManagerDep, session: SessionDep, params: ListParamsDep,
    status: Annotated[DeliveryStatus | None, Query(description="pending, succeeded, failed or cancelled")] = None,
    event: Annotated[str | None, Query(max_length=60, description="Only deliveries of this event")] = None,
) -> Page[DeliveryRead]:
    return await service.list_deliveries(session, principal, webhook_id, params, status, event)

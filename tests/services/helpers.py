"""Shared by the service tests: services and reviews made over HTTP, rows read straight from the tables."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from ronda.audit.models import AuditLog
from tests.conftest import Account, Factory

SERVICES = "/api/v1/services"


async def add_service(client: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "GitHub", "category": "development", **fields}
    response = await client.post(SERVICES, headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def review(
    client: httpx.AsyncClient, account: Account, service_id: str, **fields: Any
) -> httpx.Response:
    return await client.post(f"{SERVICES}/{service_id}/reviews", headers=account.headers, json=fields)


async def audit_events(factory: Factory, tenant_id: str, event_type: str, resource_id: str | None = None
                       ) -> list[AuditLog]:
    statement = select(AuditLog).where(AuditLog.tenant_id == tenant_id, AuditLog.event_type == event_type)
    if resource_id is not None:
        statement = statement.where(AuditLog.resource_id == resource_id)
    async with factory.runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(AuditLog.seq))).all())

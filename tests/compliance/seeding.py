"""Seed a tenant's history straight into the tables (fixed dates), for evaluation tests."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.core.db import transaction
from ronda.devices.models import Device, DeviceEvaluation, DevicePort
from ronda.services.models import Service, ServiceReview
from ronda.tenants.models import Tenant
from ronda.users.models import User

CHECKS = ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled")
LONG_AGO = datetime(2025, 6, 1, tzinfo=UTC)


def at(day: date | str, hour: int = 0) -> datetime:
    value = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(value.year, value.month, value.day, hour, tzinfo=UTC)


def checks(**failing: str) -> dict[str, str]:
    return {check: failing.get(check, "pass") for check in CHECKS}


class Seeder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def tenant(self, **fields: Any) -> str:
        name = fields.pop("name", None) or f"Compliance {secrets.token_hex(4)}"
        async with transaction(self.sessions) as session:
            tenant = Tenant(name=name, slug=name.lower().replace(" ", "-"), **fields)
            session.add(tenant)
            await session.flush()
            return tenant.id

    async def device(self, tenant_id: str, name: str, history: list[tuple[str, str, dict[str, str]]],
                     last_report: datetime | None = None, **fields: Any) -> str:
        """history: (day, status, checks) rows, each in force until the next."""
        async with transaction(self.sessions) as session:
            device = Device(tenant_id=tenant_id, device_name=name, managed=True, first_seen=LONG_AGO,
                            last_seen=last_report or datetime(2026, 3, 1, tzinfo=UTC),
                            last_report_at=last_report or datetime(2026, 3, 1, tzinfo=UTC), **fields)
            session.add(device)
            await session.flush()
            for day, status, result in history:
                session.add(DeviceEvaluation(tenant_id=tenant_id, device_id=device.id, status=status, checks=result,
                                             evaluated_at=at(day)))
            return device.id

    async def port(self, tenant_id: str, device_id: str, port: int, service: str, first_seen: datetime,
                   last_seen: datetime, protocol: str = "tcp") -> None:
        async with transaction(self.sessions) as session:
            session.add(DevicePort(tenant_id=tenant_id, device_id=device_id, port=port, protocol=protocol,
                                   service=service, source="scan", first_seen=first_seen, last_seen=last_seen))

    async def user(self, tenant_id: str, role: str = "user", mfa: bool = False, **fields: Any) -> str:
        name = f"{role}-{secrets.token_hex(4)}"
        async with transaction(self.sessions) as session:
            user = User(tenant_id=tenant_id, username=name, email=f"{name}@example.com", password_hash="x",
                        role=role, mfa_enabled=mfa, created_at=fields.pop("created_at", LONG_AGO),
                        last_login_at=fields.pop("last_login_at", datetime(2026, 1, 20, tzinfo=UTC)), **fields)
            session.add(user)
            await session.flush()
            return user.id

    async def service(self, tenant_id: str, name: str, reviews: list[tuple[str, str | None]],
                      **fields: Any) -> str:
        """reviews: (review_date, next_review_date) pairs."""
        async with transaction(self.sessions) as session:
            values: dict[str, Any] = {"category": "development", "data_classification": "internal",
                                      "created_at": LONG_AGO, "data_location": "EU", **fields}
            service = Service(tenant_id=tenant_id, name=name, **values)
            session.add(service)
            await session.flush()
            for reviewed, due in reviews:
                session.add(ServiceReview(
                    tenant_id=tenant_id, service_id=service.id, review_date=date.fromisoformat(reviewed),
                    next_review_date=date.fromisoformat(due) if due else None, created_at=at(reviewed)))
            return service.id

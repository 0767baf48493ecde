"""Shared by the agent and report tests: enrolment tokens, enrolled agents, report bodies."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import update

from ronda.core.db import transaction
from tests.conftest import Account, Factory

AGENTS = "/api/v1/agents"
REPORT = "/api/v1/devices/report"

# The 004 seed's POST /devices/report body, with its "{...}" placeholders filled in.
SEED_BODY: dict[str, Any] = {
    "device_name": 'MacBook Pro 16"',
    "serial_number": "C02XL0GTJG5J",
    "device_type": "laptop",
    "os_type": "macos",
    "os_version": "14.2.1",
    "security": {"disk_encryption": True, "firewall_enabled": True, "screen_lock_enabled": True},
    "hardware": {"manufacturer": "Apple", "model": "MacBookPro18,2", "memory_gb": 32},
    "software": {"applications": [{"name": "Firefox", "version": "121.0"}]},
}


@dataclass
class EnrolledAgent:
    agent_id: str
    device_id: str
    credential: str
    tenant_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.credential}


async def make_token(client: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{AGENTS}/tokens", headers=admin.headers, json={"label": "test", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def host_facts(**overrides: Any) -> dict[str, Any]:
    name = f"host-{secrets.token_hex(3)}"
    facts: dict[str, Any] = {"hostname": name, "serial_number": f"SN-{secrets.token_hex(5).upper()}",
                             "os_type": "linux", "os_version": "6.8.0", "platform": "linux-amd64",
                             "agent_version": "1.0.0"}
    facts.update(overrides)
    return facts


async def enroll(client: httpx.AsyncClient, token: str, **facts: Any) -> EnrolledAgent:
    response = await client.post(f"{AGENTS}/enroll", json={"token": token, **host_facts(**facts)})
    assert response.status_code == 201, response.text
    body = response.json()
    return EnrolledAgent(body["agent_id"], body["device_id"], body["credential"], body["tenant_id"])


async def enrolled_agent(client: httpx.AsyncClient, admin: Account, **facts: Any) -> EnrolledAgent:
    token = await make_token(client, admin)
    return await enroll(client, token["token"], **facts)


async def set_columns(factory: Factory, model: Any, row_id: str, **values: Any) -> None:
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(update(model).where(model.id == row_id).values(**values))


def report_body(serial: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_name": "build box",
        "hostname": f"box-{secrets.token_hex(3)}",
        "serial_number": serial or f"SN-{secrets.token_hex(5).upper()}",
        "device_type": "desktop",
        "os_type": "linux",
        "os_version": "6.8.0",
        "security": {"disk_encryption": "pass", "firewall_enabled": "pass", "screen_lock_enabled": "pass",
                     "os_up_to_date": "pass", "antivirus_enabled": "pass"},
        "hardware": {"manufacturer": "Lenovo", "model": "ThinkStation"},
        "software": {"packages": [{"name": "openssl", "version": "3.0.13"}]},
    }
    body.update(overrides)
    return body


def iso_age(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))

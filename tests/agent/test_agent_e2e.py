"""The agent against the real Ronda server (the `live` fixture): enrol, report, heartbeat.

The agent is synchronous and the test server shares this event loop, so agent calls run in a
thread. Skipped only if the server has no agent routes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ronda.agent.client import EnrollError, ServerClient
from ronda.agent.collectors import Collector
from ronda.agent.config import ConfigStore
from ronda.agent.service import Agent, enroll
from tests.agent.test_linux_collector import laptop_with
from tests.conftest import Factory, LiveServer


async def _has_agent_routes(client: httpx.AsyncClient) -> bool:
    paths = set((await client.get("/openapi.json")).json().get("paths", {}))
    return {"/api/v1/agents/enroll", "/api/v1/agents/heartbeat", "/api/v1/devices/report"} <= paths


async def test_agent_enrols_reports_and_heartbeats_against_the_real_server(
    live: LiveServer, client: httpx.AsyncClient, factory: Factory, tmp_path: Path
) -> None:
    if not await _has_agent_routes(client):
        pytest.skip("the server has no agent routes yet")
    admin = await factory.user("admin")
    created = await client.post("/api/v1/agents/tokens", headers=admin.headers,
                                json={"label": "agent e2e", "max_uses": 1, "expires_in_hours": 1})
    assert created.status_code == 201, created.text
    token = created.json()["token"]

    store = ConfigStore(tmp_path / "agent")
    identity = laptop_with({}).identity()
    config = await asyncio.to_thread(enroll, store, live.url, token, identity, "linux-amd64")
    assert config.tenant_id == admin.tenant_id
    config, credential = store.load()

    def report_and_heartbeat() -> tuple[bool, Any, bool]:
        with ServerClient(config.server_url, credential) as http:
            agent = Agent(store, config, http, lambda: laptop_with({}).collect())
            sent, result = agent.report_once()
            return sent, result, agent.heartbeat()

    sent, result, heartbeat = await asyncio.to_thread(report_and_heartbeat)
    assert sent, result.last_error
    assert heartbeat

    device = await client.get(f"/api/v1/devices/{config.device_id}", headers=admin.headers)
    assert device.status_code == 200, device.text
    body = device.json()
    assert body["hostname"] == "thinkpad"
    assert body["serial_number"] == "PF3ABC12"
    assert (body["os_type"], body["os_version"], body["device_type"]) == ("linux", "22.04", "laptop")
    assert body["managed"] is True and body["is_online"] is True
    assert body["compliance"]["checks"] == {
        "disk_encryption": "pass", "firewall_enabled": "pass", "screen_lock_enabled": "pass",
        "os_up_to_date": "pass", "antivirus_enabled": "pass",
    }
    assert body["compliance"]["status"] == "compliant"

    security = await client.get(f"/api/v1/devices/{config.device_id}/data/security", headers=admin.headers)
    assert security.status_code == 200, security.text
    assert security.json()["data"]["details"]["firewall_enabled"]["source"] == "ufw"
    software = await client.get(f"/api/v1/devices/{config.device_id}/data/software", headers=admin.headers)
    assert software.status_code == 200 and software.json()["data"]["count"] == 30

    # The token allowed one enrolment: a second machine cannot reuse it.
    with pytest.raises(EnrollError):
        await asyncio.to_thread(enroll, ConfigStore(tmp_path / "second"), live.url, token, identity, "linux-amd64")
    assert not ConfigStore(tmp_path / "second").exists()


@pytest.mark.parametrize("os_name", ["linux", "macos", "windows"])
def test_every_collectors_report_matches_the_servers_report_schema(os_name: str) -> None:
    """Reports from the recorded Linux, macOS and Windows machines pass the server's validation as sent."""
    schemas = pytest.importorskip("ronda.devices.report_schemas")
    from tests.agent.test_macos_collector import mac_with
    from tests.agent.test_windows_collector import windows_with

    factories: dict[str, Callable[[], Collector]] = {
        "linux": lambda: laptop_with({}), "macos": mac_with, "windows": windows_with,
    }
    collector = factories[os_name]()
    report = json.loads(json.dumps(collector.collect()))
    body = schemas.ReportBody.model_validate(report)
    assert body.os_type == os_name
    assert body.network is not None and body.network.primary_mac
    assert len(body.network.listening_ports) == len(report["network"]["listening_ports"])

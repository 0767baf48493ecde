"""The check-in write path stays cheap: an unchanged report costs a handful of statements."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.orm.attributes import set_committed_value

from ronda.agents.models import Agent
from ronda.core.db import transaction
from ronda.core.principal import Principal
from ronda.devices import ingest
from ronda.devices.models import Device
from ronda.tenants.models import Tenant
from tests.agents.helpers import REPORT, enrolled_agent, report_body, set_columns
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, count_statements


async def test_an_unchanged_agent_check_in_costs_three_statements(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-1")
    body = report_body("COST-1", network={"interfaces": [{"name": "eth0", "ips": ["10.0.0.7"],
                                                          "mac": "52:54:00:aa:bb:01"}],
                                          "listening_ports": [{"port": 22, "protocol": "tcp", "process": "sshd"}]},
                       custom={"asset": "A-7"})
    assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    with count_statements(factory) as statements:
        response = await client.post(REPORT, headers=agent.headers, json=body)
    assert response.status_code == 200
    kinds = sorted(s.split()[0].upper() + " " + _table(s) for s in statements)
    # The credential (with its device, the digests of its live data, and its tenant), the device's
    # last_seen and the agent's last report (one statement on PostgreSQL): no data row is read or
    # rewritten, nothing audited.
    if factory.runtime.engine.dialect.name == "postgresql":
        assert kinds == ["SELECT agents", "WITH agents"], statements
        assert "UPDATE devices" in statements[-1], statements
    else:
        assert kinds == ["SELECT agents", "UPDATE agents", "UPDATE devices"], statements
    async with factory.runtime.sessions() as session:
        device = await session.get(Device, agent.device_id)
        enrolled = await session.get(Agent, agent.agent_id)
        assert device is not None and enrolled is not None
        assert device.last_report_at == device.last_seen == enrolled.last_report_at == enrolled.last_heartbeat_at
        assert device.last_seen.isoformat().replace("+00:00", "Z") == response.json()["last_seen"]


async def test_a_changed_check_in_writes_only_what_changed(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-2")
    body = report_body("COST-2")
    await client.post(REPORT, headers=agent.headers, json=body)
    body["software"] = {"packages": [{"name": "openssl", "version": "3.0.15"}]}
    with count_statements(factory) as statements:
        assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    inserts = [_table(s) for s in statements if s.upper().startswith("INSERT")]
    # One new software version and its audit record; security and hardware are only confirmed, and
    # the device's live_data named their versions (no data is read).
    assert sorted(t for t in inserts if t != "audit_heads") == ["audit_logs", "device_data"], statements
    assert not [s for s in statements if s.upper().startswith("SELECT") and _table(s) == "device_data"], statements


async def test_data_confirmed_by_cheap_check_ins_shows_when_it_was_last_seen(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """Unchanged check-ins confirm the data through the device row alone: every view still shows
    when each version was last confirmed, and a version that stops being current keeps that time."""
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-3")
    body = report_body("COST-3", custom={"asset": "A-3"})
    data = f"{DEVICES}/{agent.device_id}/data"
    assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    first = (await client.get(f"{data}/custom", headers=admin.headers)).json()["last_seen_at"]
    assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    second = (await client.get(f"{data}/custom", headers=admin.headers)).json()["last_seen_at"]
    assert second > first
    device = (await client.get(f"{DEVICES}/{agent.device_id}", headers=admin.headers,
                               params={"include_data": "true"})).json()
    listed = next(d for d in (await client.get(DEVICES, headers=admin.headers,
                                               params={"include_data": "true"})).json()["data"]
                  if d["id"] == agent.device_id)
    for view in (device, listed):
        assert {row["data_type"]: row["last_seen_at"] for row in view["device_data"]}["custom"] == second

    # custom left out and new software: both versions stop being current, confirmed last by the second report.
    del body["custom"]
    body["software"] = {"packages": [{"name": "openssl", "version": "3.9.9"}]}
    assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    assert (await client.get(f"{data}/custom", headers=admin.headers)).json()["last_seen_at"] == second
    history = (await client.get(f"{data}/software", headers=admin.headers, params={"history": "true"})).json()["data"]
    assert [v["data"]["packages"][0]["version"] for v in history] == ["3.9.9", "3.0.13"]
    assert history[1]["last_seen_at"] == second
    assert history[0]["last_seen_at"] == history[0]["collected_at"] > second
    assert (await client.get(f"{data}/hardware", headers=admin.headers)).json()["last_seen_at"] == \
        history[0]["collected_at"]


def _table(statement: str) -> str:
    words = statement.replace('"', "").replace("(", " ").split()
    upper = [w.upper() for w in words]
    for keyword in ("FROM", "INTO", "UPDATE"):
        for index, word in enumerate(upper[:-1]):
            if word == keyword and upper[index + 1] != "SELECT":
                return words[index + 1]
    return "?"


async def test_an_unchanged_check_in_read_before_another_report_is_not_taken_as_confirmation(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """The cheap path confirms what live_data names only if no other report of the device committed
    after the device was read: otherwise it writes nothing to the device, and the full path decides."""
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-4")
    body = report_body("COST-4")
    assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    async with transaction(factory.runtime.sessions) as session:
        device = await session.get(Device, agent.device_id)
        assert device is not None and device.last_report_at is not None
        reported = device.last_report_at
        # As if read just before another report of the device committed.
        set_committed_value(device, "last_report_at", reported - timedelta(seconds=1))
        assert not await ingest._touch(session, device, None, reported + timedelta(seconds=5))
        assert await ingest._touch(session, device, None, reported + timedelta(seconds=6)) is False
        set_committed_value(device, "last_report_at", reported)
        assert await ingest._touch(session, device, None, reported + timedelta(seconds=7))
    async with factory.runtime.sessions() as session:
        stored = await session.get(Device, agent.device_id)
        assert stored is not None and stored.last_report_at == reported + timedelta(seconds=7)


async def test_the_report_path_loads_what_authentication_did_not_in_one_statement(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """With a caller known without a database read (a cached credential), the agent, its device and
    its tenant come in one statement, and the report path's look-ups of them issue none."""
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-5")
    caller = cast(Principal, SimpleNamespace(agent_id=agent.agent_id, tenant_id=agent.tenant_id))
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    async with factory.runtime.sessions() as session:
        # This session's connection only: the shared server's background sweeps use the same engine.
        connection = (await session.connection()).sync_connection
        assert connection is not None
        event.listen(connection, "before_cursor_execute", before)
        try:
            await ingest._load_agent_context(session, caller)
            await ingest._load_agent_context(session, caller)  # loaded now: no second read
            device = await session.get(Device, agent.device_id)
            assert await session.get(Agent, agent.agent_id) is not None
            assert await session.get(Tenant, agent.tenant_id) is not None
        finally:
            event.remove(connection, "before_cursor_execute", before)
    assert device is not None and device.id == agent.device_id
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1, seen


async def test_a_report_rewriting_data_reloads_a_device_another_report_changed(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """PostgreSQL: the full path locks the device and, when another report committed since it was
    read, reloads it, so live_data names the newest versions. (SQLite runs one write at a time.)"""
    if factory.runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions never interleave")
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-6")
    assert (await client.post(REPORT, headers=agent.headers, json=report_body("COST-6"))).status_code == 200
    async with factory.runtime.sessions() as session:
        device = await session.get(Device, agent.device_id)
        assert device is not None and device.last_report_at is not None and device.live_data
        unchanged = device.last_report_at
        await ingest.lock_device(session, device)  # nobody reported since: nothing reloaded
        assert device.last_report_at == unchanged
        await session.commit()  # releases the lock (and keeps the loaded state: expire_on_commit is off)
        later = unchanged + timedelta(seconds=3)
        await set_columns(factory, Device, agent.device_id, last_report_at=later, live_data={})
        await ingest.lock_device(session, device)
        assert device.last_report_at == later and device.live_data == {}
        await session.rollback()

"""The check-in write path stays cheap: an unchanged report costs a handful of statements."""

from __future__ import annotations

import httpx

from tests.agents.helpers import REPORT, enrolled_agent, report_body
from tests.conftest import Factory
from tests.devices.inventory_helpers import count_statements


async def test_an_unchanged_agent_check_in_costs_five_statements(client: httpx.AsyncClient, factory: Factory) -> None:
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
    # The credential (with its device and tenant), the latest digests, confirming the unchanged data,
    # the device's last_seen and the agent's last report: nothing is rewritten, nothing audited.
    assert kinds == ["SELECT agents", "SELECT device_data", "UPDATE agents", "UPDATE device_data",
                     "UPDATE devices"], statements


async def test_a_changed_check_in_writes_only_what_changed(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="COST-2")
    body = report_body("COST-2")
    await client.post(REPORT, headers=agent.headers, json=body)
    body["software"] = {"packages": [{"name": "openssl", "version": "3.0.15"}]}
    with count_statements(factory) as statements:
        assert (await client.post(REPORT, headers=agent.headers, json=body)).status_code == 200
    inserts = [_table(s) for s in statements if s.upper().startswith("INSERT")]
    # One new software version and its audit record; security and hardware are only confirmed.
    assert sorted(t for t in inserts if t != "audit_heads") == ["audit_logs", "device_data"], statements


def _table(statement: str) -> str:
    words = statement.replace('"', "").replace("(", " ").split()
    upper = [w.upper() for w in words]
    for keyword in ("FROM", "INTO", "UPDATE"):
        for index, word in enumerate(upper[:-1]):
            if word == keyword and upper[index + 1] != "SELECT":
                return words[index + 1]
    return "?"

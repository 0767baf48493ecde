"""GET /metrics: Prometheus text with requests by route template and status, check-ins, optional token."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.agents.helpers import SEED_BODY
from tests.conftest import Factory
from tests.support import assert_error


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample, whatever the order of its labels; 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient, factory: Factory) -> None:
    """The server is shared with other tests: figures are compared with a scrape taken first."""
    admin = await factory.user("admin")
    before = (await client.get("/metrics")).text
    for _ in range(3):
        assert (await client.get("/api/v1/users/me", headers=admin.headers)).status_code == 200
    assert_error(await client.get("/v1/devices/dev_missing", headers=admin.headers), 404)  # an alias, an unknown id
    assert (await client.post("/v1/devices/report", headers=admin.headers, json=SEED_BODY)).status_code == 201
    assert (await client.post("/v1/devices/report", headers=admin.headers, json=SEED_BODY)).status_code == 200
    assert_error(await client.get("/no/such/path"), 404)

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    def grew(name: str, **labels: str) -> float:
        return sample(text, name, **labels) - sample(before, name, **labels)

    assert grew("ronda_http_requests_total", method="GET", route="/api/v1/users/me", status="200") == 3
    # Ids never become labels: the device's route is counted by its template, whichever prefix was used.
    assert grew("ronda_http_requests_total", method="GET", route="/api/v1/devices/{device_id}", status="404") == 1
    assert "dev_missing" not in text and "/no/such/path" not in text
    assert grew("ronda_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert grew("ronda_agent_checkins_total") == 2
    assert grew("ronda_http_request_duration_seconds_count", method="GET", route="/api/v1/users/me") == 3
    assert grew("ronda_http_request_duration_seconds_bucket", method="GET", route="/api/v1/users/me", le="+Inf") == 3


async def test_metrics_token(server_factory: Any) -> None:
    token = "m" * 40
    server = await server_factory(metrics_token=token)
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = assert_error(await http.get("/metrics"), 401)
        assert "RONDA_METRICS_TOKEN" in refused["detail"]
        assert_error(await http.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
        allowed = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "ronda_http_requests_total" in allowed.text

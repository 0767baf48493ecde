"""Refused scan requests: bad input is a clean 400 naming the field, forbidden targets a 403, nothing queued."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Factory
from tests.scans.helpers import SCANS
from tests.support import assert_error

BAD: list[tuple[dict[str, Any], str]] = [
    ({"target": "not a target!!"}, "target"),
    ({"target": "10.0.0.1-300"}, "target"),
    ({"target": []}, "target"),
    ({"target": "127.0.0.1", "ports": [0, 22]}, "ports"),
    ({"target": "127.0.0.1", "ports": "22,70000"}, "ports"),
    ({"target": "127.0.0.1", "ports": "ssh-ish"}, "ports"),
    ({"target": "127.0.0.1", "timeout_ms": -5}, "timeout_ms"),
    ({"target": "127.0.0.1", "timeout_ms": 10**9}, "timeout_ms"),
    ({"target": "127.0.0.1", "max_concurrent": 0}, "max_concurrent"),
    ({"target": "127.0.0.1", "max_concurrent": 10**7}, "max_concurrent"),
    ({"target": "127.0.0.1", "profile": "turbo"}, "profile"),
    ({"target": "127.0.0.1", "colour": "blue"}, "colour"),
    ({"target": "10.0.0.0/8"}, "target"),  # far more than the /16 a scan may cover
    ({"target": "127.0.0.1", "exclude": ["nope!!"]}, "exclude"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
async def test_bad_scan_requests_are_400(
    client: httpx.AsyncClient, factory: Factory, body: dict[str, Any], field: str
) -> None:
    admin = await factory.user("admin")
    response = await client.post(f"{SCANS}/start", headers=admin.headers, json=body)
    error = assert_error(response, 400, "BAD_REQUEST")
    assert any(field in str(item.get("field", "")) for item in error["error"]["details"]), error
    assert (await client.get(SCANS, headers=admin.headers)).json()["meta"]["total"] == 0


async def test_targets_outside_the_allowed_networks_are_403(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for target in ("8.8.8.8", ["127.0.0.1", "1.1.1.0/30"], "2001:db8::1"):
        response = await client.post(f"{SCANS}/start", headers=admin.headers,
                                     json={"target": target, "profile": "quick"})
        body = assert_error(response, 403, "FORBIDDEN")
        assert "RONDA_SCAN_ALLOWED_NETWORKS" in body["detail"]
    assert (await client.get(SCANS, headers=admin.headers)).json()["meta"]["total"] == 0


async def test_the_limits_are_configurable(server_factory: object, factory: Factory) -> None:
    server = await server_factory(scan_max_hosts=16, scan_allowed_networks="127.0.0.0/28")  # type: ignore[operator]
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        too_big = await http.post(f"{SCANS}/start", headers=admin.headers, json={"target": "127.0.0.0/26"})
        assert "16" in assert_error(too_big, 400, "BAD_REQUEST")["detail"]
        outside = await http.post(f"{SCANS}/start", headers=admin.headers, json={"target": "127.0.0.20"})
        assert_error(outside, 403, "FORBIDDEN")

"""A /24's result: every host in numeric address order, read in one indexed query."""

from __future__ import annotations

import time

import httpx

from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.scans.models import Scan, ScanHost
from tests.conftest import Factory
from tests.scans.helpers import SCANS


async def test_a_full_slash_24_result(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("viewer")
    now = utcnow()
    async with transaction(factory.runtime.sessions) as session:
        scan = Scan(tenant_id=admin.tenant_id, target="10.1.2.0/24", networks=["10.1.2.0/24"], target_key="t24",
                    profile="normal", options={"ports": "top 1000"}, status="completed", progress_percent=100.0,
                    hosts_total=254, hosts_found=254, ports_found=254 * 12, probes_sent=254_000, started_at=now,
                    completed_at=now)
        session.add(scan)
        await session.flush()
        session.add_all([
            ScanHost(tenant_id=admin.tenant_id, scan_id=scan.id, ip=f"10.1.2.{n}", os_confidence=0,
                     device_type_confidence=0, ports=[
                         {"port": port, "protocol": "tcp", "state": "open", "service": "http", "product": "nginx",
                          "version": "1.25", "banner": "HTTP/1.1 200 OK", "cpe": [], "extra": {}}
                         for port in (22, 80, 443, 3306, 5432, 6379, 8000, 8080, 8443, 9000, 9090, 9200)])
            for n in range(254, 0, -1)
        ])
    began = time.monotonic()
    response = await client.get(f"{SCANS}/{scan.id}/result", headers=admin.headers)
    elapsed = time.monotonic() - began
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["devices_found"] == 254 and result["open_ports_total"] == 254 * 12
    assert [d["ip"] for d in result["devices"]][:3] == ["10.1.2.1", "10.1.2.2", "10.1.2.3"]
    assert result["devices"][-1]["ip"] == "10.1.2.254"
    assert elapsed < 5.0, f"a /24's result took {elapsed:.2f} s"
    print(f"/24 result with {254 * 12} ports: {elapsed * 1000:.0f} ms")

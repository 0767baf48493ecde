"""The nmap engine through the API (when nmap is installed here), and a refused engine."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.conftest import Factory
from tests.scans.helpers import SCANS, Listener, closed_port, start, wait_for


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed on this machine")
async def test_nmap_engine_finds_the_same_open_ports(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    listeners = [await Listener.open() for _ in range(2)]
    try:
        ports = [*(item.port for item in listeners), closed_port()]
        scan = await start(client, admin.headers, target="127.0.0.1", profile="custom", ports=ports,
                           timeout_ms=500, engine="nmap", enable_profiling=False)
        assert scan["options"]["engine"] == "nmap"
        done = await wait_for(client, admin.headers, scan["id"], {"completed", "failed"}, timeout=60)
        assert done["status"] == "completed", done
        result = (await client.get(f"{SCANS}/{scan['id']}/result", headers=admin.headers)).json()
        [host] = result["devices"]
        assert {p["port"] for p in host["ports"] if p["state"] == "open"} == {item.port for item in listeners}
    finally:
        for item in listeners:
            await item.close()

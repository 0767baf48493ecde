"""Shared by the scan tests: real listeners on loopback, closed ports, polling a scan to its end."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from tests.conftest import Factory

SCANS = "/api/v1/scans"


class Listener:
    """A TCP port on 127.0.0.1 that accepts and closes (a real open port)."""

    def __init__(self, server: asyncio.Server) -> None:
        self.server = server
        self.port = int(server.sockets[0].getsockname()[1])

    @classmethod
    async def open(cls) -> Listener:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        return cls(await asyncio.start_server(handle, "127.0.0.1", 0))

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(f"{SCANS}/start", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def wait_for(
    client: httpx.AsyncClient, headers: dict[str, str], scan_id: str, statuses: set[str], timeout: float = 40.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"{SCANS}/{scan_id}", headers=headers)
        assert response.status_code == 200, response.text
        scan = dict(response.json())
        if scan["status"] in statuses:
            return scan
        assert time.monotonic() < deadline, f"scan stayed {scan['status']}: {scan}"
        await asyncio.sleep(0.1)


async def audit_records(factory: Factory, tenant_id: str, event_type: str, scan_id: str) -> list[AuditLog]:
    async with transaction(factory.runtime.sessions, write=False) as session:
        statement = select(AuditLog).where(AuditLog.tenant_id == tenant_id, AuditLog.event_type == event_type,
                                           AuditLog.resource_id == scan_id)
        return list((await session.scalars(statement)).all())

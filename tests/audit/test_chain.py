"""The hash chain: /audit-logs/verify and `ronda audit verify` name the first tampered or missing record."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, update

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from tests.conftest import Account, Factory
from tests.support import assert_error


async def build_chain(client: httpx.AsyncClient, factory: Factory) -> tuple[Account, list[dict[str, Any]]]:
    """A tenant whose chain holds five records: two logins, two key creations and a revocation."""
    tenant = await factory.tenant()
    admin = await factory.user("admin", tenant_id=tenant)
    await factory.user("analyst", tenant_id=tenant)
    first = (await client.post("/api/v1/api-keys", headers=admin.headers,
                               json={"name": "one", "permissions": ["devices_read"]})).json()
    await client.post("/api/v1/api-keys", headers=admin.headers, json={"name": "two", "permissions": ["cve_read"]})
    assert (await client.delete(f"/api/v1/api-keys/{first['id']}", headers=admin.headers)).status_code == 200
    records = (await client.get("/api/v1/audit-logs", headers=admin.headers, params={"sort": "created_at"})).json()
    assert [r["seq"] for r in records["data"]] == [1, 2, 3, 4, 5]
    return admin, records["data"]


async def verify(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.get("/api/v1/audit-logs/verify", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def tamper(factory: Factory, record_id: str, **values: Any) -> None:
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(update(AuditLog).where(AuditLog.id == record_id).values(**values))


async def remove(factory: Factory, record_id: str) -> None:
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(delete(AuditLog).where(AuditLog.id == record_id))


async def test_an_untouched_chain_verifies(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _ = await build_chain(client, factory)
    result = await verify(client, admin)
    assert result["valid"] is True and result["first_broken"] is None
    assert result["checked"] == 5 and result["chain"] == admin.tenant_id
    assert result["verified_at"].endswith("Z")
    # Each verification is itself recorded, so the next one checks one record more.
    [note] = (await client.get("/api/v1/audit-logs", headers=admin.headers,
                               params={"event_type": "audit.verified"})).json()["data"]
    assert note["actor_id"] == admin.id and note["metadata"]["valid"] is True and note["metadata"]["checked"] == 5
    assert note["seq"] == 6
    again = await verify(client, admin)
    assert again["valid"] is True and again["checked"] == 6


async def test_changed_metadata_is_named(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, records = await build_chain(client, factory)
    target = records[2]
    assert target["event_type"] == "api_key.created"
    await tamper(factory, target["id"], details={**target["metadata"], "permissions": ["users_manage"]})
    result = await verify(client, admin)
    assert result["valid"] is False and result["checked"] == 2
    broken = result["first_broken"]
    assert broken["id"] == target["id"] and broken["seq"] == 3 and broken["event_type"] == "api_key.created"
    assert "content changed" in broken["reason"]
    # The failed check is recorded too, naming the record.
    notes = (await client.get("/api/v1/audit-logs", headers=admin.headers,
                              params={"event_type": "audit.verified"})).json()["data"]
    assert notes[0]["metadata"]["valid"] is False and notes[0]["metadata"]["first_broken_id"] == target["id"]
    # Still broken, still at the same record, however often it is checked.
    assert (await verify(client, admin))["first_broken"]["id"] == target["id"]


async def test_changed_event_type_is_named(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, records = await build_chain(client, factory)
    target = records[1]
    await tamper(factory, target["id"], event_type="auth.logout")
    broken = (await verify(client, admin))["first_broken"]
    assert broken["id"] == target["id"] and broken["seq"] == 2 and broken["event_type"] == "auth.logout"


async def test_a_deleted_record_is_a_sequence_gap(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, records = await build_chain(client, factory)
    await remove(factory, records[2]["id"])
    result = await verify(client, admin)
    assert result["valid"] is False and result["checked"] == 2
    broken = result["first_broken"]
    assert broken["id"] == records[3]["id"] and broken["seq"] == 4
    assert "sequence gap" in broken["reason"]
    assert_error(await client.get(f"/api/v1/audit-logs/{records[2]['id']}", headers=admin.headers), 404)


async def test_tampering_in_one_tenant_leaves_others_valid(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, records = await build_chain(client, factory)
    other, _ = await build_chain(client, factory)
    await tamper(factory, records[0]["id"], ip_address="10.0.0.1")
    assert (await verify(client, admin))["first_broken"]["seq"] == 1
    assert (await verify(client, other))["valid"] is True


async def run_cli(database_url: str, data_dir: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "RONDA_DATABASE_URL": database_url, "RONDA_DATA_DIR": str(data_dir), "COLUMNS": "400",
           "RONDA_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from ronda.cli import main; main()", "audit", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_verify_names_the_tampered_record(
    client: httpx.AsyncClient, factory: Factory, migrated: str, data_dir: Path
) -> None:
    admin, records = await build_chain(client, factory)
    clean, _ = await build_chain(client, factory)
    code, out = await run_cli(migrated, data_dir, "verify", "--tenant-id", admin.tenant_id)
    assert code == 0, out
    assert f"ok      {admin.tenant_id}: 5 records" in out

    target = records[3]
    await tamper(factory, target["id"], details={"forged": True})
    code, out = await run_cli(migrated, data_dir, "verify", "--tenant-id", admin.tenant_id)
    assert code == 1, out
    assert "BROKEN" in out and admin.tenant_id in out
    assert f"seq 4 id {target['id']}" in out and "content changed" in out
    assert "3 records verified before it" in out

    code, out = await run_cli(migrated, data_dir, "verify", "--tenant-id", clean.tenant_id)
    assert code == 0 and f"ok      {clean.tenant_id}: 5 records" in out, out
    # Every chain at once: the tampered one is reported by name, the clean one as ok; the exit code is 1.
    code, out = await run_cli(migrated, data_dir, "verify")
    assert code == 1, out
    assert f"{admin.tenant_id}: first bad record seq 4 id {target['id']}" in out
    assert f"ok      {clean.tenant_id}: 5 records" in out
    # The API agrees with the command.
    assert (await verify(client, admin))["first_broken"]["id"] == target["id"]


async def test_cli_help_explains(migrated: str, data_dir: Path) -> None:
    code, out = await run_cli(migrated, data_dir, "verify", "--help")
    assert code == 0 and "tampered" in out and "--tenant-id" in out

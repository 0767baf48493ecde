"""A read-only and a full SQLite database: writes answer a clean 503, reads go on, nothing is corrupt.

Each test has a SQLite file of its own (whatever database the suite runs on): these faults are SQLite's.
The read-only database is opened through SQLite's own `mode=ro` (which root cannot bypass, unlike file
permissions); the full disk is a 2 MB tmpfs mounted by the test.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, Factory, LiveServer, make_settings, start_server
from tests.faults.helpers import DEVICES, REPORT, report
from tests.support import assert_error


def sqlite_check(path: Path) -> tuple[str, int]:
    """PRAGMA integrity_check and the number of devices, through a connection of our own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        verdict = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        devices = int(conn.execute("SELECT count(*) FROM devices").fetchone()[0])
    return verdict, devices


@contextlib.asynccontextmanager
async def server(url: str, data_dir: Path) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    live = await start_server(make_settings(url, data_dir))
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            yield live, http
    finally:
        await live.stop()


async def seeded(url: str, data_dir: Path, devices: int) -> Account:
    """Migrate the file, make an admin (logged in: the token outlives this server) and some devices."""
    from ronda.core.migrate import upgrade_async

    await upgrade_async(url)
    async with server(url, data_dir) as (live, http):
        admin = await Factory(live, http).user("admin")
        for n in range(devices):
            created = await http.post(REPORT, headers=admin.headers, json=report(f"SEED-{n}"))
            assert created.status_code == 201, created.text
    return admin


async def test_a_read_only_database_refuses_writes_cleanly_and_keeps_reading(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    admin = await seeded(f"sqlite+aiosqlite:///{path}", tmp_path, devices=3)
    before = sqlite_check(path)
    assert before == ("ok", 3)
    read_only = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    async with server(read_only, tmp_path) as (_, http):
        health = await http.get("/health")
        assert health.status_code == 200, health.text
        listed = await http.get(DEVICES, headers=admin.headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["meta"]["total"] == 3
        writes = [
            await http.post(REPORT, headers=admin.headers, json=report("NEW-1")),
            await http.post(REPORT, headers=admin.headers, json=report("SEED-0", revision=2)),
            await http.post(DEVICES, headers=admin.headers, json={"device_name": "by hand", "device_type": "server"}),
        ]
        for response in writes:
            assert_error(response, 503, "SERVICE_UNAVAILABLE")
        again = await http.get(DEVICES, headers=admin.headers)  # a failed write leaves the server reading
        assert again.status_code == 200 and again.json()["meta"]["total"] == 3
    assert sqlite_check(path) == before  # nothing half-written


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small file system to fill")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a {size} tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(directory: Path, leave: int) -> Path:
    """Take all but about `leave` bytes of the file system with a filler file."""
    filler = directory / "filler"
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as out:
        out.write(b"\0" * max(free - leave, 0))
    return filler


async def test_a_full_disk_gives_clean_errors_and_no_corruption(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        path = disk / "full.db"
        url = f"sqlite+aiosqlite:///{path}"
        admin = await seeded(url, tmp_path, devices=2)
        async with server(url, tmp_path) as (_, http):
            filler = fill(disk, leave=400 * 1024)
            acknowledged: list[str] = []
            refused: list[httpx.Response] = []
            for n in range(400):
                response = await http.post(REPORT, headers=admin.headers, json=report(f"FILL-{n}", packages=40))
                if response.status_code == 201:
                    acknowledged.append(f"FILL-{n}")
                    continue
                refused.append(response)
                if len(refused) >= 3:
                    break
            assert refused, "the disk never filled up"
            for response in refused:
                assert_error(response, 503, "SERVICE_UNAVAILABLE")
            listed = await http.get(DEVICES, headers=admin.headers, params={"per_page": 1})
            assert listed.status_code in (200, 503), listed.text  # a read may need a page of its own
            if listed.status_code == 503:
                assert_error(listed, 503, "SERVICE_UNAVAILABLE")

            filler.unlink()  # space again: the same server, not restarted, takes writes
            after = await http.post(REPORT, headers=admin.headers, json=report("AFTER-1"))
            assert after.status_code == 201, after.text
            listed = await http.get(DEVICES, headers=admin.headers, params={"per_page": 1})
            assert listed.status_code == 200, listed.text
            assert listed.json()["meta"]["total"] == 2 + len(acknowledged) + 1
        verdict, devices = sqlite_check(path)
        assert verdict == "ok"
        assert devices == 2 + len(acknowledged) + 1  # every acknowledged report, nothing half-written

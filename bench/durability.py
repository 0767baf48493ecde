"""`kill -9` during a check-in load: no acknowledged report may be lost, nothing may be left corrupt.

    .venv/bin/python bench/durability.py [--databases sqlite,postgresql] [--clients 16] [--rounds 3]
                                         [--before-kill 3] [--pg-url URL]

For each database: a fresh database (SQLite in a temporary directory; PostgreSQL as
`ronda_bench_durability`, made with createdb and dropped afterwards) with a bench admin, and a Ronda
server process (uvicorn + httptools + uvloop, one worker, rate limits off). Each round:

1. `--clients` keep-alive clients report their own device (serial `dur-<n>`) over and over through
   POST /api/v1/devices/report, each report carrying a new revision (`os_version: rev-<r>` and a
   changed package, so every report writes a new data version and an audit record); a client
   remembers the last revision the server acknowledged (a 2xx);
2. after `--before-kill` seconds the server gets SIGKILL, mid-load;
3. the server is started again on the same database, and the bench reads back every device.

It prints, per round, reports sent, acknowledged, answered with an error or cut off by the kill,
and devices found; then checks, once the rounds are done: every acknowledged revision is there
(a device may be one revision ahead: written, but killed before its answer went out), the list's
`meta.total` matches the rows, every audit hash chain verifies, and SQLite passes
`PRAGMA integrity_check`. Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    HOST,
    PASSWORD,
    USERNAME,
    drop_postgres,
    free_port,
    fresh_postgres,
    prepare_ronda,
    uvicorn_command,
)

SECRET = "bench-secret-" + "k" * 40
PG_DB = "ronda_bench_durability"


@dataclass
class Round:
    sent: int = 0
    acknowledged: int = 0
    errors: int = 0
    cut_off: int = 0
    acked_revision: dict[int, int] = field(default_factory=dict)
    sent_revision: dict[int, int] = field(default_factory=dict)


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(uvicorn_command("ronda.app:app_from_environment", port, factory=True), env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not answer /health within 30 s")


def report(client: int, revision: int) -> dict[str, Any]:
    return {
        "device_name": f"durability {client}",
        "serial_number": f"dur-{client}",
        "device_type": "laptop",
        "os_type": "linux",
        "os_version": f"rev-{revision}",
        "security": {"disk_encryption": True, "firewall_enabled": revision % 2 == 0, "screen_lock_enabled": True},
        "software": {"applications": [{"name": "bench-package", "version": f"1.{revision}"}]},
    }


async def load(base: str, token: str, clients: int, revisions: dict[int, int], kill_at: float,
               pid: int) -> Round:
    """Report until the server is killed at `kill_at` (monotonic); the kill happens from here."""
    import httpx

    result = Round()
    headers = {"Authorization": f"Bearer {token}"}
    stop = asyncio.Event()

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
            while not stop.is_set():
                revision = revisions.get(n, 0) + 1
                revisions[n] = revision
                result.sent += 1
                result.sent_revision[n] = revision
                try:
                    response = await http.post("/api/v1/devices/report", json=report(n, revision))
                except httpx.HTTPError:
                    result.cut_off += 1
                    return
                if response.is_success:
                    result.acknowledged += 1
                    result.acked_revision[n] = revision
                else:
                    result.errors += 1

    async def killer() -> None:
        await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
        os.kill(pid, signal.SIGKILL)
        stop.set()

    await asyncio.gather(killer(), *(client(n) for n in range(clients)))
    return result


async def read_back(url: str) -> tuple[dict[int, int], int, int]:
    """serial -> revision found; rows in devices; the tenant's device_counts total."""
    from sqlalchemy import func, select

    from ronda.core.db import create_engine
    from ronda.devices.models import Device, DeviceCount

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Device.serial_number, Device.os_version)
                                       .where(Device.serial_number.like("DUR-%")))).all()
            total_rows = int((await conn.execute(select(func.count()).select_from(Device))).scalar_one())
            counted = int((await conn.execute(select(func.coalesce(func.sum(DeviceCount.total), 0)))).scalar_one())
    finally:
        await engine.dispose()
    found = {int(serial.split("-")[1]): int(str(version).split("-")[1]) for serial, version in rows}
    return found, total_rows, counted


def integrity(url: str, data_dir: Path) -> list[str]:
    import sqlite3

    from ronda.audit.admin import verify_all
    from ronda.config import Settings

    problems: list[str] = []
    settings = Settings(_env_file=None, database_url=url, data_dir=data_dir, secret_key=SECRET)  # type: ignore[call-arg]
    for chain in asyncio.run(verify_all(settings)):
        if not chain.valid:
            problems.append(f"audit chain {chain.chain} broken at {chain.first_broken}")
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split(":///", 1)[1]) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"SQLite integrity_check: {verdict}")
    return problems


def run_database(kind: str, args: argparse.Namespace, tmp: Path) -> tuple[list[str], bool]:
    import httpx

    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}" if kind == "sqlite" else fresh_postgres(args.pg_url, PG_DB)
    lines: list[str] = []
    ok = True
    try:
        env = prepare_ronda(url, tmp, SECRET)
        port = free_port()
        base = f"http://{HOST}:{port}"
        revisions: dict[int, int] = {}
        acked: dict[int, int] = {}
        sent: dict[int, int] = {}
        proc = start_server(env, port)
        for number in range(1, args.rounds + 1):
            login = httpx.post(base + "/api/v1/auth/login", json={"username": USERNAME, "password": PASSWORD},
                               timeout=30)
            login.raise_for_status()
            token = login.json()["access_token"]
            kill_at = time.monotonic() + args.before_kill
            result = asyncio.run(load(base, token, args.clients, revisions, kill_at, proc.pid))
            proc.wait()
            acked.update(result.acked_revision)
            sent.update(result.sent_revision)
            started = time.monotonic()
            proc = start_server(env, port)
            restart = time.monotonic() - started
            found, rows, counted = asyncio.run(read_back(url))
            lost = [n for n, revision in acked.items() if found.get(n, 0) < revision]
            phantom = [n for n, revision in found.items() if revision > sent.get(n, 0)]
            ahead = sum(1 for n, revision in found.items() if revision > acked.get(n, 0))
            lines.append(f"{kind:<11} round {number}: sent {result.sent:>5}, acknowledged {result.acknowledged:>5}, "
                         f"errors {result.errors}, cut off by the kill {result.cut_off:>3}; after restart "
                         f"({restart:.1f} s): {len(found)} devices found, {len(lost)} acknowledged revisions lost, "
                         f"{ahead} written but unacknowledged, {len(phantom)} never sent")
            if lost or phantom or result.errors:
                ok = False
            if rows != counted:
                lines.append(f"{kind:<11} round {number}: device_counts says {counted}, devices has {rows} rows")
                ok = False
        proc.terminate()
        proc.wait(timeout=10)
        problems = integrity(url, tmp)
        lines += [f"{kind:<11} {p}" for p in problems]
        ok = ok and not problems
        lines.append(f"{kind:<11} audit chains and {'SQLite integrity' if kind == 'sqlite' else 'counts'}: "
                     f"{'ok' if not problems else 'FAILED'}")
    finally:
        if kind == "postgresql":
            drop_postgres(args.pg_url, PG_DB)
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--clients", type=int, default=16, help="concurrent reporting clients (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="kill -9 and restart this many times (default 3)")
    parser.add_argument("--before-kill", type=float, default=3.0, help="seconds of load before each kill")
    parser.add_argument("--pg-url", help=f"PostgreSQL URL to use instead of a fresh local {PG_DB}")
    args = parser.parse_args()
    started = time.monotonic()
    verdict = True
    output: list[str] = []
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        if kind not in ("sqlite", "postgresql"):
            parser.error(f"unknown database {kind!r}")
        with tempfile.TemporaryDirectory(prefix="ronda-durability-") as tmp:
            lines, ok = run_database(kind, args, Path(tmp))
        output += lines
        verdict = verdict and ok
    print()
    print(f"kill -9 of the server during POST /api/v1/devices/report load, {args.clients} clients, "
          f"{args.rounds} rounds of {args.before_kill:g} s")
    print("\n".join(output))
    print(f"\nno acknowledged report lost, nothing corrupt: {'yes' if verdict else 'NO'} "
          f"(whole run {time.monotonic() - started:.0f} s)")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

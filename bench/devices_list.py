"""The device inventory list over 100,000 devices: GET /api/v1/devices?per_page=100, on SQLite and PostgreSQL.

    .venv/bin/python bench/devices_list.py [--devices 100000] [--duration 8] [--connections 32]
                                           [--databases sqlite,postgresql] [--generator auto|wrk|python]
                                           [--extras] [--profile]

For each database: a fresh database (SQLite in a temporary directory; PostgreSQL as
`ronda_bench_devices` on the local server, dropped and made again with dropdb/createdb, or --pg-url),
migrated with ronda.core.migrate.upgrade; an admin made by ronda.users.admin.create_admin; 100,000
devices for that admin's tenant bulk-inserted with SQLAlchemy Core executemany (agent, scan and
manual devices with realistic names, addresses, OS, tags, ports, posture results and last-seen times
spread over a month, and device_data rows for a tenth of the managed ones); PostgreSQL then gets
VACUUM ANALYZE (what autovacuum does after such a load), SQLite no statistics (Ronda never runs
ANALYZE); then one Ronda server process
(uvicorn + httptools + uvloop, one worker, RONDA_RATE_LIMITS=off, RONDA_LOG_LEVEL=WARNING, 127.0.0.1
only), a login, and for each target a warm-up and a measured run with wrk (or, without wrk, the
keep-alive asyncio client in this file, in its own process):

    GET /api/v1/devices?per_page=100            the issue's target: >= 300 requests/s, p99 < 250 ms
    GET /api/v1/devices?per_page=100&page=500   a deep page (offset 49,900), reported
    with --extras: sort=ip, is_online=true, search=..., include_data=true (shorter runs), reported

It prints requests/s, p50/p99 latency and the server's CPU per request, and whether the target is met.
The server is left to go idle between targets (a slow target's queued requests would bill the next).
Every phase is bounded; with the defaults the whole run (both databases) takes about 1.5 minutes,
with --extras about 2.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchlib import (
    HOST,
    PASSWORD,
    USERNAME,
    cpu_seconds,
    drop_postgres,
    free_port,
    fresh_postgres,
    load_runner,
    pick_generator,
    prepare_ronda,
    profile,
    ronda_server,
    settle,
)

SECRET = "bench-secret-" + "d" * 40
PG_DB = "ronda_bench_devices"
TARGET_RPS = 300.0
TARGET_P99_MS = 250.0
LIST = "/api/v1/devices?per_page=100"

VENDORS = ("Dell Inc.", "Lenovo", "HP", "Apple", "Cisco Systems", "Synology", "Ubiquiti", "Brother", "Raspberry Pi",
           "Intel Corporate", "Samsung", "Microsoft")
OSES = (("windows", "10.0.19045"), ("windows", "10.0.22631"), ("macos", "14.2.1"), ("macos", "13.6.3"),
        ("linux", "Ubuntu 24.04"), ("linux", "Debian 12"), ("linux", "Fedora 40"), (None, None))
TYPES = ("laptop", "desktop", "server", "printer", "phone", "switch", "access_point", "storage", "unknown")
TAGS = ("finance", "remote", "front-desk", "engineering", "lab", "vip", "kiosk", "legacy", "byod")
SITES = ("site_hq", "site_branch", "site_dc", "site_lab", None)
CHECKS = ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled")
STATUS_OF = {0: "compliant", 1: "needs_review"}


# --- data ------------------------------------------------------------------------------------------


def device_rows(tenant_id: str, owner_id: str, count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """`count` devices as agents, scans and people leave them."""
    from ronda.core.ids import new_id
    from ronda.core.timeutil import utcnow

    now = utcnow()
    for n in range(count):
        source = rng.choices(("agent", "scan", "manual"), weights=(6, 3, 1))[0]
        managed = source == "agent"
        os_type, os_version = rng.choice(OSES[:-1] if managed else OSES)
        vendor = rng.choice(VENDORS)
        # Agents check in every 15 minutes or so (some silent for days); scans are less frequent.
        if managed:
            age = timedelta(seconds=rng.uniform(0, 900)) if rng.random() < 0.7 else timedelta(days=rng.uniform(0, 30))
        else:
            age = timedelta(hours=rng.uniform(0, 24 * 30))
        last_seen = now - age
        evaluated = managed and rng.random() < 0.95
        results = {c: rng.choices(("pass", "fail", "unknown"), weights=(8, 1, 1))[0] for c in CHECKS} \
            if evaluated else {}
        passed = sum(1 for r in results.values() if r == "pass")
        failed = sum(1 for r in results.values() if r == "fail")
        status = ("non_compliant" if failed else STATUS_OF[int("unknown" in results.values())]) if evaluated \
            else "unknown"
        ip = None if rng.random() < 0.03 else (
            f"fd00::{n:x}" if rng.random() < 0.05 else f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        mac = None if rng.random() < 0.05 else \
            f"3C:22:FB:{n // 65536 % 256:02X}:{n // 256 % 256:02X}:{n % 256:02X}"
        hostname = f"{rng.choice(('wks', 'lt', 'srv', 'prn', 'ap', 'nas'))}-{n:06d}.corp.example"
        yield {
            "id": new_id("dev"), "tenant_id": tenant_id, "site_id": rng.choice(SITES),
            "user_id": owner_id if rng.random() < 0.01 else None,
            "device_name": hostname.split(".")[0] if source != "scan" or rng.random() < 0.5 else None,
            "hostname": hostname, "serial_number": f"SN{n:08d}" if source != "scan" else None,
            "device_type": rng.choice(TYPES), "os_type": os_type, "os_version": os_version,
            "os_guess": "Linux 4.x" if source == "scan" and rng.random() < 0.3 else None,
            "ip": ip, "mac": mac, "vendor": vendor,
            "note": "Asset tag checked in the last audit" if rng.random() < 0.02 else None,
            "tags": rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2))),
            "open_ports": sorted(rng.sample((22, 80, 443, 445, 631, 3389, 5353, 8080), rng.choice((0, 1, 2, 3)))),
            "sources": [source], "managed": managed,
            "is_online": (not managed) and rng.random() < 0.6,
            "first_seen": last_seen - timedelta(days=rng.uniform(0, 365)), "last_seen": last_seen,
            "last_report_at": last_seen if managed else None,
            "compliance_status": status,
            "compliance_score": round(passed / (passed + failed) * 100, 1) if passed + failed else None,
            "compliance_checks": results, "evaluated_at": last_seen if evaluated else None,
            "created_at": last_seen, "updated_at": last_seen,
        }


def data_rows(devices: list[dict[str, Any]], share: float, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Security and hardware data for a share of the managed devices."""
    import hashlib

    from ronda.core.ids import new_id

    for device in devices:
        if not device["managed"] or rng.random() > share:
            continue
        payloads = {
            "security": {**{c: device["compliance_checks"].get(c, "unknown") == "pass" for c in CHECKS}},
            "hardware": {"manufacturer": device["vendor"], "model": "Latitude 7440",
                         "cpu_cores": rng.choice((4, 8, 10)),
                         "memory_bytes": rng.choice((8, 16, 32)) * 1024**3, "serial_number": device["serial_number"]},
        }
        for data_type, data in payloads.items():
            text = json.dumps(data, sort_keys=True)
            yield {"id": new_id("dd"), "tenant_id": device["tenant_id"], "device_id": device["id"],
                   "data_type": data_type, "data": data, "digest": hashlib.sha256(text.encode()).hexdigest(),
                   "collected_at": device["last_seen"], "last_seen_at": device["last_seen"]}


async def seed(url: str, count: int) -> tuple[float, int]:
    """Bulk-insert `count` devices (and some device_data) for the bench admin's tenant; seconds taken, data rows."""
    from sqlalchemy import insert, select, text

    from ronda.core.db import create_engine
    from ronda.devices.models import Device, DeviceData
    from ronda.users.models import User

    rng = random.Random(20261123)
    engine = create_engine(url)
    started = time.perf_counter()
    written = 0
    try:
        async with engine.begin() as conn:
            owner_id, tenant_id = (await conn.execute(
                select(User.id, User.tenant_id).where(User.username == USERNAME))).one()
        rows = list(device_rows(tenant_id, owner_id, count, rng))
        extra = list(data_rows(rows, 0.1, rng))
        for batch_start in range(0, len(rows), 10_000):
            async with engine.begin() as conn:
                await conn.execute(insert(Device), rows[batch_start:batch_start + 10_000])
        for batch_start in range(0, len(extra), 10_000):
            async with engine.begin() as conn:
                await conn.execute(insert(DeviceData), extra[batch_start:batch_start + 10_000])
        written = len(extra)
        if engine.dialect.name == "postgresql":
            # What autovacuum does shortly after a bulk load: statistics and the visibility map. (SQLite
            # is left without statistics, as Ronda leaves a real database: it never runs ANALYZE.)
            async with engine.connect() as conn:
                await conn.execute(text("COMMIT"))
                await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started, written


def prepare(url: str, data_dir: Path, count: int) -> tuple[dict[str, str], str]:
    """Migrate, create the admin, seed the devices; the server environment and a note."""
    env = prepare_ronda(url, data_dir, SECRET)
    seconds, data_count = asyncio.run(seed(url, count))
    return env, f"{count} devices and {data_count} device_data rows inserted in {seconds:.1f} s"


# --- load ------------------------------------------------------------------------------------------


@dataclass
class Result:
    database: str
    name: str
    path: str
    rps: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    requests: int = 0
    errors: int = 0
    cpu_ms: float = 0.0
    targeted: bool = False
    notes: list[str] = field(default_factory=list)


def measure(result: Result, base: str, headers: dict[str, str], pid: int, args: argparse.Namespace,
            duration: float) -> Result:
    run = load_runner(args.generator)
    url = base + result.path
    settle(pid)
    run(url, args.warmup, args.connections, headers)
    before = cpu_seconds(pid)
    found = run(url, duration, args.connections, headers)
    result.rps, result.p50, result.p99 = found["rps"], found["p50"], found["p99"]
    result.requests, result.errors = found["requests"], found["errors"]
    if result.requests:
        result.cpu_ms = (cpu_seconds(pid) - before) * 1000 / result.requests
    return result


# --- profiling -------------------------------------------------------------------------------------

BUCKETS = [
    ("database driver + SQLAlchemy", ("sqlalchemy/", "aiosqlite/", "asyncpg/")),
    ("pydantic", ("pydantic",)),
    ("device list code", ("ronda/devices/",)),
    ("authentication", ("ronda/auth/",)),
    ("FastAPI routing + dependencies", ("fastapi/",)),
    ("Ronda middleware + other", ("ronda/",)),
    ("Starlette/uvicorn plumbing", ("starlette/", "uvicorn/")),
]


# --- main ------------------------------------------------------------------------------------------


def check_response(base: str, headers: dict[str, str], count: int) -> str:
    """One request before measuring: the list answers 200 with 100 devices and the exact total."""
    import httpx

    response = httpx.get(base + LIST, headers=headers, timeout=30)
    response.raise_for_status()
    body = response.json()
    if len(body["data"]) != 100 or body["meta"]["total"] != count:
        raise RuntimeError(f"unexpected list: {len(body['data'])} devices, total {body['meta']['total']}")
    return f"{len(response.content) / 1024:.0f} KiB per page of 100"


def run_database(kind: str, args: argparse.Namespace, tmp: Path) -> tuple[list[Result], list[str]]:
    import httpx

    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}" if kind == "sqlite" else fresh_postgres(args.pg_url, PG_DB)
    notes: list[str] = []
    results: list[Result] = []
    try:
        env, note = prepare(url, tmp, args.devices)
        notes.append(f"{kind}: {note}")
        port = free_port()
        base = f"http://{HOST}:{port}"
        with ronda_server(env, port) as proc:
            login = httpx.post(base + "/api/v1/auth/login", json={"username": USERNAME, "password": PASSWORD},
                               timeout=30)
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            notes.append(f"{kind}: {check_response(base, headers, args.devices)}")
            targets = [Result(kind, "first page", LIST, targeted=True),
                       Result(kind, "page 500", LIST + "&page=500")]
            if args.extras:
                targets += [Result(kind, "sort=ip", LIST + "&sort=ip"),
                            Result(kind, "is_online=true", LIST + "&is_online=true"),
                            Result(kind, "search=srv-0", LIST + "&search=srv-0"),
                            Result(kind, "include_data", LIST + "&include_data=true")]
            for index, target in enumerate(targets):
                duration = args.duration if index < 2 else max(args.duration / 2, 2.0)
                results.append(measure(target, base, headers, proc.pid, args, duration))
            if args.profile:
                run = load_runner(args.generator)
                notes.append(f"{kind}: where the server's time goes for the first page (py-spy, 5 s):")
                notes += profile(proc.pid, 5, lambda: run(base + LIST, 4, args.connections, headers), BUCKETS)
    finally:
        if kind == "postgresql":
            drop_postgres(args.pg_url, PG_DB)
    return results, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000, help="devices in the tenant (default 100000)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per target (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--pg-url", help=f"PostgreSQL URL to use instead of a fresh local {PG_DB}")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--extras", action="store_true", help="also sort=ip, is_online, search, include_data")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy and sum up")
    args = parser.parse_args()
    args.generator = pick_generator(args.generator)

    started = time.monotonic()
    results: list[Result] = []
    notes: list[str] = []
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        if kind not in ("sqlite", "postgresql"):
            parser.error(f"unknown database {kind!r}")
        with tempfile.TemporaryDirectory(prefix="ronda-devices-list-") as tmp:
            found, more = run_database(kind, args, Path(tmp))
            results += found
            notes += more

    print()
    print(f"GET /api/v1/devices over {args.devices} devices of one tenant; {args.generator}, {args.connections} "
          f"keep-alive connections, {args.duration:g} s after {args.warmup:g} s warm-up; {os.cpu_count()} CPUs; "
          "uvicorn + httptools + uvloop, 1 worker")
    print()
    print(f"{'database':<11} {'target':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7} "
          f"{'server CPU ms/req':>18}")
    print("-" * 92)
    for r in results:
        print(f"{r.database:<11} {r.name:<16} {r.rps:>8.0f} {r.p50:>8.1f} {r.p99:>8.1f} {r.requests:>9} "
              f"{r.errors:>7} {r.cpu_ms:>18.2f}")
    print()
    for r in results:
        if r.targeted:
            met = r.rps >= TARGET_RPS and r.p99 < TARGET_P99_MS and not r.errors
            print(f"target on {r.database} ({TARGET_RPS:.0f} req/s, p99 < {TARGET_P99_MS:.0f} ms) for {LIST}: "
                  f"{'met' if met else 'MISSED'} ({r.rps:.0f} req/s, p99 {r.p99:.1f} ms)")
    for note in notes:
        print(note)
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Compliance report generation at scale: an ISO 27001 PDF and a SOC 2 JSON report for one tenant.

    .venv/bin/python bench/reports.py [--devices 10000] [--days 90] [--services 300]
                                      [--history changes|daily] [--audit-records 20000]
                                      [--database-url URL]

Builds a temporary SQLite database with the migrations (ronda.core.migrate.upgrade), then
bulk-inserts through SQLAlchemy Core one tenant with --devices devices and --days of posture
history each (`changes`, the default: Ronda writes a posture row only when a device's result
changes; here every 5 to 14 days, about 100,000 rows for 10,000 devices; `daily`: one row per device
per day, 900,000 rows, a stress case the product never produces), three open ports per device (some
risky: Telnet, SMB, RDP, databases), 300 services with their review histories (some lapsed), 60
users (some without MFA), 20 API keys and a valid audit-log hash chain of --audit-records records.

Each report is then queued as the API queues it and generated in a fresh child process by
ReportRunner.run_one(), the code path of the server's background runner (claim, evaluate with SQL,
render in a worker thread, write the file, mark it completed). The child prints the wall time of
that call, the CPU time it used (the machine is shared: wall time moves with other load, CPU time
much less) and its peak resident memory (VmHWM, which includes the interpreter and imports, also
shown before generation). Targets: under 5 s and under 300 MB per report. The temporary directory
is removed at the end. About 20 seconds in total, most of it seeding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

TARGET_SECONDS = 5.0
TARGET_MB = 300.0
CHECKS = ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled")
TYPES = ("laptop", "desktop", "server", "printer", "phone", "router", "unknown")
PORTS = ((22, "ssh"), (443, "https"), (80, "http"), (445, "microsoft-ds"), (3389, "ms-wbt-server"),
         (23, "telnet"), (3306, "mysql"), (8443, "https-alt"), (631, "ipp"), (5353, "mdns"))
PORT_WEIGHTS = (30, 30, 15, 6, 4, 1, 2, 8, 3, 5)
BATCH = 20_000


def evaluation_rows(tenant_id: str, device_id: str, days: int, mode: str, now: datetime,
                    rng: random.Random) -> Iterator[dict[str, Any]]:
    from ronda.core.ids import new_id

    start = now - timedelta(days=days)
    flaky = rng.random() < 0.15  # a share of devices drift in and out of compliance
    day = 0
    while day < days:
        results = {c: "pass" for c in CHECKS}
        if flaky and rng.random() < 0.4:
            results[rng.choice(CHECKS)] = rng.choice(("fail", "fail", "unknown"))
        failed = "fail" in results.values()
        status = "non_compliant" if failed else ("needs_review" if "unknown" in results.values() else "compliant")
        yield {"id": new_id("eval"), "tenant_id": tenant_id, "device_id": device_id, "status": status,
               "score": 80.0 if failed else 100.0, "checks": results,
               "evaluated_at": start + timedelta(days=day, minutes=rng.randint(0, 600))}
        day += 1 if mode == "daily" else rng.randint(5, 14)


async def seed(url: str, devices: int, days: int, services: int, mode: str,
               audit_records: int = 20_000) -> dict[str, Any]:
    from sqlalchemy import insert, inspect

    from ronda.api_keys.models import ApiKey
    from ronda.audit.chain import GENESIS, record_digest
    from ronda.audit.models import AuditHead, AuditLog
    from ronda.core.db import create_engine
    from ronda.core.ids import new_id
    from ronda.devices.models import Device, DeviceEvaluation, DevicePort
    from ronda.services.models import Service, ServiceReview
    from ronda.tenants.models import Tenant
    from ronda.users.models import User

    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    engine = create_engine(url)
    counts: dict[str, int] = {}
    tenant_id = new_id("tenant")
    async with engine.begin() as conn:
        await conn.execute(insert(Tenant), [{"id": tenant_id, "name": "Bench Corp", "slug": "bench-corp",
                                            "compliance_policy": {"required_checks": list(CHECKS),
                                                                  "stale_after_days": 7, "min_os_versions": {}}}])
        users = [{"id": new_id("user"), "tenant_id": tenant_id, "username": f"user{n}", "email": f"user{n}@bench.test",
                  "full_name": f"User {n}", "password_hash": "x", "role": "admin" if n < 5 else "user",
                  "mfa_enabled": rng.random() < 0.8, "created_at": now - timedelta(days=400),
                  "last_login_at": now - timedelta(days=rng.choice((1, 3, 20, 120)))} for n in range(60)]
        await conn.execute(insert(User), users)
        owner_ids = [u["id"] for u in users]
        await conn.execute(insert(ApiKey), [{
            "id": new_id("key"), "tenant_id": tenant_id, "user_id": owner_ids[0], "name": f"key {n}",
            "key_prefix": f"rk_live_{n:02d}", "key_hash": f"{n:064x}", "permissions": ["devices_read"],
            "created_at": now - timedelta(days=200), "expires_at": None if n % 4 == 0 else now + timedelta(days=90),
            "last_used_at": now - timedelta(days=rng.choice((1, 2, 150)))} for n in range(20)])
        device_rows: list[dict[str, Any]] = []
        port_rows: list[dict[str, Any]] = []
        history = 0
        for n in range(devices):
            device_id = new_id("dev")
            device_rows.append({
                "id": device_id, "tenant_id": tenant_id, "device_name": f"lt-{n:05d}",
                "hostname": f"lt-{n:05d}.corp", "device_type": rng.choice(TYPES), "os_type": "linux",
                "ip": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
                "user_id": rng.choice(owner_ids) if rng.random() < 0.9 else None, "managed": True, "is_online": True,
                "first_seen": now - timedelta(days=days + 30), "last_seen": now - timedelta(hours=rng.randint(0, 48)),
                "last_report_at": now - timedelta(hours=rng.randint(0, 48)) if rng.random() < 0.97
                else now - timedelta(days=20), "compliance_status": "compliant", "compliance_checks": {},
                "tags": [], "open_ports": [], "sources": ["agent"]})
            for port, service in {rng.choices(PORTS, PORT_WEIGHTS)[0] for _ in range(3)}:
                port_rows.append({"id": new_id("port"), "tenant_id": tenant_id, "device_id": device_id, "port": port,
                                  "protocol": "tcp", "state": "open", "service": service, "source": "scan",
                                  "first_seen": now - timedelta(days=rng.randint(1, 200)), "last_seen": now})
        for start in range(0, len(device_rows), BATCH):
            await conn.execute(insert(Device), device_rows[start:start + BATCH])
        for start in range(0, len(port_rows), BATCH):
            await conn.execute(insert(DevicePort), port_rows[start:start + BATCH])
        batch: list[dict[str, Any]] = []
        for device in device_rows:
            for row in evaluation_rows(tenant_id, device["id"], days, mode, now, rng):
                batch.append(row)
                if len(batch) >= BATCH:
                    await conn.execute(insert(DeviceEvaluation), batch)
                    history += len(batch)
                    batch = []
        if batch:
            await conn.execute(insert(DeviceEvaluation), batch)
            history += len(batch)
        service_rows, review_rows = [], []
        for n in range(services):
            service_id = new_id("svc")
            classification = rng.choice(("internal", "internal", "confidential", "restricted", "public"))
            service_rows.append({
                "id": service_id, "tenant_id": tenant_id, "name": f"Service {n:03d}", "category": "productivity",
                "owner_id": rng.choice(owner_ids) if rng.random() < 0.95 else None,
                "data_classification": classification, "sso_enabled": rng.random() < 0.85,
                "mfa_enforced": rng.random() < 0.85, "audit_logging_enabled": rng.random() < 0.8,
                "encrypted_at_rest": rng.random() < 0.9, "data_location": "EU" if rng.random() < 0.9 else None,
                "review_frequency": "quarterly", "status": "compliant", "created_at": now - timedelta(days=500)})
            reviewed = (now - timedelta(days=rng.randint(300, 420))).date()
            while reviewed < now.date():
                due = reviewed + timedelta(days=91)
                review_rows.append({
                    "id": new_id("rev"), "tenant_id": tenant_id, "service_id": service_id, "review_date": reviewed,
                    "next_review_date": due, "data_classification": classification, "status": "compliant",
                    "created_at": datetime.combine(reviewed, datetime.min.time(), UTC)})
                reviewed = due + timedelta(days=rng.choice((-5, 0, 0, 3, 40)))  # some reviews come late
        await conn.execute(insert(Service), service_rows)
        await conn.execute(insert(ServiceReview), review_rows)
        # A valid audit-log chain, so the chain verification does real work.
        prev, entries = GENESIS, []
        for seq in range(1, audit_records + 1):
            entry = AuditLog(id=new_id("evt"), tenant_id=tenant_id, chain=tenant_id, seq=seq,
                             event_type="device.compliance_changed", event_name="Device Compliance Changed",
                             category="compliance", actor_type="agent", details={"n": seq},
                             created_at=now - timedelta(minutes=audit_records + 1 - seq), prev_hash=prev)
            entry.hash = record_digest(entry, prev)
            prev = entry.hash
            # Keyed by column name (the details attribute is the `metadata` column).
            entries.append({attr.columns[0].key: getattr(entry, attr.key) for attr in inspect(AuditLog).column_attrs})
        await conn.execute(insert(AuditLog), entries)
        await conn.execute(insert(AuditHead), [{"chain": tenant_id, "seq": audit_records, "hash": prev}])
        counts = {"devices": devices, "evaluations": history, "ports": len(port_rows), "services": services,
                  "reviews": len(review_rows), "users": len(users), "audit_records": audit_records}
    await engine.dispose()
    return {"tenant_id": tenant_id, "admin": users[0]["id"], "counts": counts, "today": now.date().isoformat()}


async def queue_report(url: str, tenant_id: str, admin_id: str, framework: str, fmt: str, start: date,
                       end: date) -> str:
    from ronda.core.db import create_engine, create_session_factory, transaction
    from ronda.core.timeutil import utcnow
    from ronda.reports.models import Report

    engine = create_engine(url)
    async with transaction(create_session_factory(engine)) as session:
        report = Report(tenant_id=tenant_id, kind="compliance", framework=framework, format=fmt, status="pending",
                        period_start=start, period_end=end, parameters={}, requested_by=admin_id,
                        requested_by_name="user0@bench.test", summary={}, attempts=0, created_at=utcnow())
        session.add(report)
        await session.flush()
        report_id = report.id
    await engine.dispose()
    return report_id


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). ru_maxrss is not used: Linux carries it over from
    the parent across fork and exec, so a child would report the seeding parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def child(url: str, data_dir: str) -> None:
    """In a fresh process: one ReportRunner.run_one(), timed, with its peak memory."""
    from ronda.core.db import create_engine, create_session_factory
    from ronda.reports.runner import ReportRunner

    engine = create_engine(url)
    runner = ReportRunner(create_session_factory(engine), None, Path(data_dir))
    before = peak_rss_mb()
    began, cpu = time.perf_counter(), time.process_time()
    assert await runner.run_one(), "no report was queued"
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    peak = peak_rss_mb()
    await engine.dispose()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak, "baseline_mb": before}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--history", choices=("changes", "daily"), default="changes")
    parser.add_argument("--audit-records", type=int, default=20_000)
    parser.add_argument("--database-url", default="", help="an empty database to use instead of temporary SQLite")
    parser.add_argument("--child", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(*args.child))
        return 0

    from ronda.core.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="ronda-bench-reports-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        began = time.perf_counter()
        upgrade(url)
        seeded = asyncio.run(seed(url, args.devices, args.days, args.services, args.history,
                                    args.audit_records))
        print(f"seeded in {time.perf_counter() - began:.1f} s: " +
              ", ".join(f"{v:,} {k}" for k, v in seeded["counts"].items()))
        end = date.fromisoformat(seeded["today"])
        start = end - timedelta(days=args.days - 1)
        failures = 0
        for framework, fmt in (("iso27001", "pdf"), ("soc2", "json")):
            report_id = asyncio.run(queue_report(url, seeded["tenant_id"], seeded["admin"], framework, fmt,
                                                 start, end))
            out = subprocess.run([sys.executable, __file__, "--child", url, tmp], capture_output=True, text=True,
                                 check=False, env={**os.environ, "RONDA_LOG_LEVEL": "WARNING"})
            if out.returncode != 0:
                print(out.stdout, out.stderr, file=sys.stderr)
                return 1
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            files = list(Path(tmp, "reports", seeded["tenant_id"]).glob(f"{report_id}.*"))
            size = files[0].stat().st_size if files else 0
            met = figures["seconds"] < TARGET_SECONDS and figures["peak_mb"] < TARGET_MB
            failures += 0 if files else 1
            print(f"{framework} {fmt}: {figures['seconds']:.2f} s (CPU {figures['cpu']:.2f} s), "
                  f"peak RSS {figures['peak_mb']:.0f} MB (baseline {figures['baseline_mb']:.0f} MB), "
                  f"file {size / 1024:.0f} KiB "
                  f"-> target (<{TARGET_SECONDS:.0f} s, <{TARGET_MB:.0f} MB) {'met' if met else 'MISSED'}")
            if fmt == "json" and files:
                evidence = json.loads(files[0].read_bytes())["evidence"]
                chain, posture = evidence["audit_chain"], evidence["device_compliance"]
                print(f"  evidence check: audit chain {chain['result']} over {chain['total']:,.0f} records; "
                      f"posture {posture['total']:,.0f} device-days, {posture['exceptions_total']:,} devices short")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

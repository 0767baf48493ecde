"""PostgreSQL and Redis restarted under a check-in load: clean 503s while away, recovery by itself, no
acknowledged report lost.

    .venv/bin/python bench/faults.py [--clients 8] [--rate 3] [--before 3] [--outage 3] [--after 6]

Never touches the machine's shared servers: it starts its OWN PostgreSQL (initdb in a temporary
directory, run as the postgres OS user, trust auth, 127.0.0.1, a free port) and its OWN Redis
(no persistence, a free port), migrates the database, and starts two Ronda server processes on them
(uvicorn + httptools + uvloop, one worker each, rate limits ON through the shared Redis, as deployed).
Each client has its own service API key and alternates a check-in through POST /api/v1/devices/report
(its own device, a new revision each time) with a GET /api/v1/devices, paced at `--rate` requests per
second; even clients check in on server A and list on B, odd ones the other way round. A WebSocket
client on server B listens to /ws/events: events about server A's devices can only reach it through
the Redis event bus.

Phases, each `--before` s of load, the fault, then `--after` s of load once the fault is over:
baseline (no fault); PostgreSQL `pg_ctl restart -m fast`; PostgreSQL stopped for `--outage` s, then
started; Redis stopped and started at once; Redis stopped for `--outage` s, then started. For each
it prints requests sent,
acknowledged (2xx), 503s with the contract body, 429s, other errors (anything else: 500s, bodies off
the contract, time-outs, dropped connections), the slowest answer, and the recovery time (from the
moment the server was back to the last failed answer). Then it checks: both servers answer again
without a restart, every acknowledged revision is in the database, events cross from A to B after
Redis is back. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BENCH_DIR, HOST, PASSWORD, USERNAME, free_port, prepare_ronda, ronda_server

sys.path.insert(0, str(BENCH_DIR.parent))  # the throwaway servers live with the fault tests
from tests.faults.instances import OwnPostgres, OwnRedis, own_postgres, own_redis

SECRET = "bench-secret-" + "f" * 40
REPORT = "/api/v1/devices/report"
LIST = "/api/v1/devices?per_page=10"


@dataclass
class Phase:
    name: str
    sent: int = 0
    acknowledged: int = 0
    unavailable: int = 0  # 503 with the contract body
    limited: int = 0  # 429 with the contract body
    other: int = 0
    other_kinds: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    fault_over: float | None = None  # monotonic time the server was back
    last_failure: float = 0.0  # monotonic time of the last failed answer
    ended: float = 0.0
    late: dict[str, int] = field(default_factory=dict)  # failures once the server was back, by kind

    def note_other(self, kind: str) -> None:
        self.other += 1
        self.other_kinds[kind] = self.other_kinds.get(kind, 0) + 1

    def failed(self, kind: str) -> None:
        self.last_failure = time.monotonic()
        if self.fault_over is not None:
            self.late[kind] = self.late.get(kind, 0) + 1

    def recovery(self) -> str:
        if self.fault_over is None:
            return "-"
        return f"{max(0.0, self.last_failure - self.fault_over):.1f} s"


@dataclass
class Load:
    """The state the clients share across phases."""

    bases: tuple[str, str]
    keys: list[str]
    rate: float
    timeout: float
    revisions: dict[int, int] = field(default_factory=dict)
    acked: dict[int, int] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)


def report_body(client: int, revision: int) -> dict[str, Any]:
    return {
        "device_name": f"faults {client}",
        "serial_number": f"flt-{client}",
        "device_type": "laptop",
        "os_type": "linux",
        "os_version": f"rev-{revision}",
        "security": {"disk_encryption": True, "firewall_enabled": revision % 2 == 0, "screen_lock_enabled": True},
        "software": {"applications": [{"name": "bench-package", "version": f"1.{revision}"}]},
    }


def contract_error(response: Any, status: int) -> bool:
    try:
        body = response.json()
        return bool(response.status_code == status and isinstance(body.get("detail"), str)
                    and body["error"]["code"] and isinstance(body["error"]["message"], str))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


async def run_phase(load: Load, phase: Phase, seconds: float, fault: Callable[[], None] | None,
                    before: float) -> None:
    """Drive the load for `seconds`; `fault` (blocking) runs in a thread after `before` seconds."""
    import httpx

    stop = asyncio.Event()

    async def client(n: int) -> None:
        headers = {"X-API-Key": load.keys[n]}
        async with httpx.AsyncClient(headers=headers, timeout=load.timeout) as http:
            step = 0
            while not stop.is_set():
                started = time.monotonic()
                # Even clients report to server A and list on B, odd ones the other way round.
                base = load.bases[(n + step) % 2]
                if step % 2 == 0:
                    revision = load.revisions.get(n, 0) + 1
                    load.revisions[n] = revision
                    load.sent[n] = revision
                    request = http.post(base + REPORT, json=report_body(n, revision))
                else:
                    revision = 0
                    request = http.get(base + LIST)
                step += 1
                phase.sent += 1
                try:
                    response = await request
                except httpx.TimeoutException:
                    phase.note_other("time-out")
                    phase.failed("time-out")
                    continue
                except httpx.HTTPError as exc:
                    phase.note_other(type(exc).__name__)
                    phase.failed(type(exc).__name__)
                    await asyncio.sleep(0.2)
                    continue
                finished = time.monotonic()
                phase.slowest = max(phase.slowest, finished - started)
                if response.is_success:
                    phase.acknowledged += 1
                    if revision:
                        load.acked[n] = max(load.acked.get(n, 0), revision)
                else:
                    server = "A" if base == load.bases[0] else "B"
                    phase.failed(f"{response.status_code} {response.text[:60]} on {server}")
                    if contract_error(response, 503):
                        phase.unavailable += 1
                    elif contract_error(response, 429):
                        phase.limited += 1
                    else:
                        phase.note_other(f"HTTP {response.status_code}")
                await asyncio.sleep(max(0.0, 1 / load.rate - (time.monotonic() - started)))

    async def timer() -> None:
        if fault is not None:
            await asyncio.sleep(before)
            await asyncio.to_thread(fault)
            phase.fault_over = time.monotonic()
            await asyncio.sleep(seconds)
        else:
            await asyncio.sleep(seconds)
        stop.set()

    await asyncio.gather(timer(), *(client(n) for n in range(len(load.keys))))


async def watch_events(base: str, token: str, seen: list[tuple[float, str]], stop: asyncio.Event) -> None:
    """A WebSocket client on one server: note when each message arrives; reconnect if the stream closes."""
    import websockets

    url = base.replace("http://", "ws://") + f"/ws/events?token={token}"
    while not stop.is_set():
        try:
            async with websockets.connect(url, open_timeout=5) as ws:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    seen.append((time.monotonic(), str(raw)))
        except Exception:  # the stream dropped (a server error while Redis was away): connect again
            await asyncio.sleep(0.5)


async def found_revisions(url: str) -> dict[int, tuple[int, str]]:
    """client -> (revision stored, device id)."""
    from sqlalchemy import select

    from ronda.core.db import create_engine
    from ronda.devices.models import Device

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Device.serial_number, Device.os_version, Device.id)
                                       .where(Device.serial_number.like("FLT-%")))).all()
    finally:
        await engine.dispose()
    return {int(str(serial).split("-")[1]): (int(str(version).split("-")[1]), str(device_id))
            for serial, version, device_id in rows}


def service_keys(base: str, count: int) -> tuple[str, list[str]]:
    """The admin's access token, and one service API key per client (each its own rate budget)."""
    import httpx

    login = httpx.post(base + "/api/v1/auth/login", json={"username": USERNAME, "password": PASSWORD}, timeout=30)
    login.raise_for_status()
    token = str(login.json()["access_token"])
    keys = []
    for n in range(count):
        created = httpx.post(base + "/api/v1/api-keys", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                             json={"name": f"faults {n}", "permissions": ["devices_read", "devices_write"],
                                   "kind": "service"})
        created.raise_for_status()
        keys.append(str(created.json()["key"]))
    return token, keys


def healthy_again(bases: tuple[str, str], key: str) -> list[str]:
    """Each server, as it runs (never restarted): /health and a check-in answer 2xx."""
    import httpx

    problems = []
    for base in bases:
        health = httpx.get(base + "/health", timeout=10)
        listed = httpx.get(base + LIST, headers={"X-API-Key": key}, timeout=10)
        if health.status_code != 200 or listed.status_code != 200:
            problems.append(f"{base}: /health {health.status_code}, device list {listed.status_code}")
    return problems


async def run_all(args: argparse.Namespace, pg: OwnPostgres, redis: OwnRedis, bases: tuple[str, str],
                  token: str, keys: list[str], seen: list[tuple[float, str]]) -> tuple[list[Phase], Load]:
    load = Load(bases, keys, args.rate, args.timeout)
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(watch_events(bases[1], token, seen, stop_watch))
    await asyncio.sleep(1.0)

    def pg_stop_start() -> None:
        pg.stop("fast")
        time.sleep(args.outage)
        pg.start()

    def redis_stop_start() -> None:
        redis.stop()
        time.sleep(args.outage)
        redis.start()

    def redis_restart() -> None:
        redis.stop()
        redis.start()

    plan: list[tuple[str, Callable[[], None] | None]] = [
        ("baseline", None),
        ("PostgreSQL restart -m fast", lambda: pg.restart("fast")),
        (f"PostgreSQL away {args.outage:g} s", pg_stop_start),
        ("Redis restart", redis_restart),
        (f"Redis away {args.outage:g} s", redis_stop_start),
    ]
    phases: list[Phase] = []
    for name, fault in plan:
        phase = Phase(name)
        if fault is None:
            await run_phase(load, phase, args.before + args.after, None, 0)
        else:
            await run_phase(load, phase, args.after, fault, args.before)
        phase.ended = time.monotonic()
        phases.append(phase)
    stop_watch.set()
    await watcher
    return phases, load


def crossing_events(phases: list[Phase], seen: list[tuple[float, str]],
                    from_a: set[str]) -> dict[str, tuple[int, float | None]]:
    """Per phase, the WebSocket messages on server B about devices that report to server A (they can
    only have come through Redis), and for a Redis phase only those once Redis was back, with how long
    after the first came."""
    out: dict[str, tuple[int, float | None]] = {}
    start = 0.0
    for phase in phases:
        redis_phase = phase.name.startswith("Redis") and phase.fault_over is not None
        since = phase.fault_over if redis_phase and phase.fault_over is not None else start
        times = [t - since for t, raw in seen if since < t <= phase.ended and any(d in raw for d in from_a)]
        out[phase.name] = (len(times), min(times) if times and redis_phase else None)
        start = phase.ended
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, each with its own key (8)")
    parser.add_argument("--rate", type=float, default=3.0, help="requests per second per client (3)")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before each fault (3)")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds a server stays stopped (3)")
    parser.add_argument("--after", type=float, default=6.0, help="seconds of load after each fault (6)")
    parser.add_argument("--timeout", type=float, default=10.0, help="client time-out per request (10 s)")
    args = parser.parse_args()
    started = time.monotonic()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ronda-faults-")))
        pg = stack.enter_context(own_postgres())
        redis = stack.enter_context(own_redis())
        env = prepare_ronda(pg.url, tmp, SECRET)
        env.update({"RONDA_REDIS_URL": redis.url, "RONDA_RATE_LIMITS": "on"})
        ports = (free_port(), free_port())
        for port in ports:
            stack.enter_context(ronda_server(env, port))
        bases = (f"http://{HOST}:{ports[0]}", f"http://{HOST}:{ports[1]}")
        token, keys = service_keys(bases[0], args.clients)
        seen: list[tuple[float, str]] = []
        phases, load = asyncio.run(run_all(args, pg, redis, bases, token, keys, seen))
        problems = healthy_again(bases, keys[0])
        found = asyncio.run(found_revisions(pg.url))
    lost = [n for n, revision in load.acked.items() if found.get(n, (0, ""))[0] < revision]
    phantom = [n for n, (revision, _) in found.items() if revision > load.sent.get(n, 0)]
    crossing = crossing_events(phases, seen, {device_id for n, (_, device_id) in found.items() if n % 2 == 0})

    print()
    print(f"two Ronda servers on an own PostgreSQL {pg.bin.parent.name} and Redis; {args.clients} clients at "
          f"{args.rate:g} requests/s each (check-ins and device lists, on both servers), rate limits on")
    print(f"{'phase':<28} {'sent':>6} {'acked':>6} {'503':>5} {'429':>5} {'other':>6} {'slowest':>8} "
          f"{'recovery':>9}")
    verdict = True
    for phase in phases:
        print(f"{phase.name:<28} {phase.sent:>6} {phase.acknowledged:>6} {phase.unavailable:>5} {phase.limited:>5} "
              f"{phase.other:>6} {phase.slowest:>7.2f}s {phase.recovery():>9}")
        if phase.other:
            print(f"{'':<28} other errors: {phase.other_kinds}")
            verdict = False
        if phase.late:  # clean errors still, but after the server was back: what the recovery time counts
            print(f"{'':<28} failures once it was back: {phase.late}")
        if phase.name == "baseline" and (phase.unavailable or phase.limited):
            verdict = False
    print("\nWebSocket on server B, events about devices that check in on server A (through Redis):")
    for name, (count, first) in crossing.items():
        after = f" once Redis was back, the first {first:.1f} s after" if first is not None else ""
        print(f"  {name:<28} {count:>4}{after}")
        if name.startswith("Redis") and not count:
            verdict = False
    print(f"devices: {len(load.acked)} with acknowledged check-ins, {len(found)} found; {len(lost)} acknowledged "
          f"revisions lost, {len(phantom)} revisions never sent")
    for problem in problems:
        print(f"not recovered: {problem}")
    verdict = verdict and not lost and not phantom and not problems
    print(f"\nclean errors while away, recovery without restarts, nothing acknowledged lost: "
          f"{'yes' if verdict else 'NO'} (whole run {time.monotonic() - started:.0f} s)")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

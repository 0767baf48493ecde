"""What Ronda's stack costs per request, next to a bare Starlette JSON endpoint measured in the same run.

    .venv/bin/python bench/api_overhead.py [--duration 8] [--connections 32]

Starts, each as its own uvicorn process (httptools + uvloop, one worker, 127.0.0.1 only):
  1. a bare Starlette app with one JSON route (this file's `bare_app`);
  2. Ronda on a fresh SQLite database in a temporary directory, migrated, with one user created by
     `ronda.users.admin.create_admin`, RONDA_RATE_LIMITS=off and RONDA_LOG_LEVEL=WARNING.
Then drives every target with the same load generator (wrk when installed, else the asyncio
keep-alive client in this file, run in its own process) and prints requests/s, p99 and the ratio
to bare Starlette. It also times one Argon2id verification with the default parameters and
measures logins/s through POST /api/v1/auth/login with concurrent hashing capped as by default.
Every loop here is bounded by a duration; the whole run takes well under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
USERNAME = "bench-admin"
PASSWORD = "bench password 0123456789"
SECRET = "bench-secret-" + "b" * 40
TARGETS = {"health": 0.30, "me": 0.15}  # share of bare Starlette's rate the issue asks for


async def _bare_json(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": "0.0.0"})


bare_app = Starlette(routes=[Route("/json", _bare_json)])


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app: str, port: int, *, factory: bool = False) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--http", "httptools",
               "--loop", "uvloop", "--workers", "1", "--log-level", "warning", "--no-access-log"]
    return command + (["--factory"] if factory else [])


@contextmanager
def serve(command: list[str], env: dict[str, str], probe: str) -> Iterator[subprocess.Popen[bytes]]:
    import httpx

    proc = subprocess.Popen(command, env=env, cwd=BENCH_DIR)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {' '.join(command)}")
            try:
                if httpx.get(probe, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer {probe} within 30 s")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load generation ---------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    rps: float
    p99_ms: float
    requests: int
    errors: int
    generator: str


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(url: str, duration: float, connections: int, *, headers: dict[str, str] | None = None,
            body: str | None = None) -> tuple[float, float, int, int]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(int(duration), 1)}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:
            # wrk sends a body only through a Lua script.
            script = Path(tmp) / "post.lua"
            script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            command += ["-s", str(script)]
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                             timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return rps, p99, total, errors


async def _pyload(url: str, duration: float, connections: int, headers: dict[str, str],
                  body: str | None) -> dict[str, Any]:
    """Keep-alive HTTP/1.1 over raw asyncio streams: little client overhead, like wrk."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    method = "POST" if body is not None else "GET"
    payload = (body or "").encode()
    lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if head[9:10] not in (b"2", b"3"):
                    errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    return {"rps": len(latencies) / elapsed, "p99": p99, "total": len(latencies), "errors": errors}


def run_python_load(url: str, duration: float, connections: int, *, headers: dict[str, str] | None = None,
                    body: str | None = None) -> tuple[float, float, int, int]:
    """The fallback generator, in its own process so it never shares a core's loop with the bench."""
    spec = json.dumps({"url": url, "duration": duration, "connections": connections,
                       "headers": headers or {}, "body": body})
    out = subprocess.run([sys.executable, __file__, "--loadgen", spec], capture_output=True, text=True,
                         check=True, timeout=duration + 30).stdout
    data = json.loads(out)
    return data["rps"], data["p99"], data["total"], data["errors"]


def measure(name: str, url: str, args: argparse.Namespace, *, headers: dict[str, str] | None = None,
            body: str | None = None, connections: int | None = None) -> Result:
    run = run_wrk if args.generator == "wrk" else run_python_load
    conns = connections or args.connections
    run(url, args.warmup, conns, headers=headers, body=body)  # warm caches, pools and JIT-free paths
    rps, p99, total, errors = run(url, args.duration, conns, headers=headers, body=body)
    return Result(name, rps, p99, total, errors, args.generator)


# --- Ronda setup -------------------------------------------------------------------------------------


def prepare_ronda(data_dir: Path) -> tuple[dict[str, str], str]:
    """A fresh SQLite database, migrated, with one user; returns the server's environment and DB URL."""
    from ronda.config import Settings
    from ronda.core.migrate import upgrade
    from ronda.users.admin import create_admin

    url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
    upgrade(url)
    env = {
        **os.environ,
        "RONDA_DATABASE_URL": url,
        "RONDA_DATA_DIR": str(data_dir),
        "RONDA_SECRET_KEY": SECRET,
        "RONDA_RATE_LIMITS": "off",
        "RONDA_LOG_LEVEL": "WARNING",
    }
    for name in ("RONDA_ARGON2_MEMORY_KIB", "RONDA_ARGON2_TIME_COST", "RONDA_ARGON2_PARALLELISM",
                 "RONDA_MAX_CONCURRENT_HASHES", "RONDA_REDIS_URL"):
        env.pop(name, None)  # the defaults are what is being measured
    settings = Settings(_env_file=None, database_url=url, data_dir=data_dir, secret_key=SECRET,  # type: ignore[call-arg]
                        rate_limits="off", log_level="WARNING")
    asyncio.run(create_admin(settings, username=USERNAME, email="bench@example.com", password=PASSWORD,
                             tenant="Bench", role="admin"))
    return env, url


def argon2_cost(samples: int) -> tuple[float, float, int, int, int]:
    """Median and best wall time (ms) of one verification with the default Settings parameters."""
    from ronda.config import Settings
    from ronda.core.security import Passwords

    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    passwords = Passwords(defaults.argon2_memory_kib, defaults.argon2_time_cost, defaults.argon2_parallelism, 1)
    stored = passwords.hash_sync(PASSWORD)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        assert passwords.verify_sync(stored, PASSWORD)
        timings.append((time.perf_counter() - started) * 1000)
    return (statistics.median(timings), min(timings), defaults.argon2_memory_kib, defaults.argon2_time_cost,
            defaults.argon2_parallelism)


# --- profiling ---------------------------------------------------------------------------------------

# What a sample of the server's event-loop thread is doing, by its innermost frame that matches
# (py-spy frames read "func (file:line)"); the order breaks ties within one frame.
BUCKETS = [
    ("database: SQLAlchemy + aiosqlite round trips", ("sqlalchemy/", "aiosqlite/")),
    ("JWT decode", ("jwt/",)),
    ("Ronda authentication + rate limit", ("ronda/auth/authenticator", "ronda/core/ratelimit")),
    ("Ronda middleware (headers, ids, body limit)", ("ronda/core/middleware",)),
    ("response: serialise + socket writes", ("starlette/responses.py", "httptools_impl.py:5")),
    ("FastAPI routing + dependency solving", ("fastapi/routing.py", "fastapi/dependencies/")),
    ("route code (handlers, services, schemas)", ("ronda/", "pydantic")),
    ("Starlette/uvicorn request plumbing", ("starlette/", "uvicorn/")),
]


def profile(pid: int, seconds: int, run_load: Any) -> list[str]:
    """Sample the server's loop thread with py-spy while `run_load` drives it; a few lines of summary."""
    spy = shutil.which("py-spy")
    if spy is None:
        return ["(py-spy not installed: `pip install py-spy` to see where the time goes)"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        proc = subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw",
                                 "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        run_load()
        proc.wait(timeout=seconds + 30)
        if not out.exists():
            return ["(py-spy could not attach; it needs ptrace permission)"]
        lines = out.read_text().splitlines()
    totals: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if "Runner.run" not in stack:  # only the event loop's thread
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        if frames[-1].startswith("Runner.run"):
            bucket = "idle: waiting in the event loop (I/O, worker threads)"
        else:  # charged to the innermost frame that belongs to a bucket
            bucket = next((name for frame in reversed(frames) for name, marks in BUCKETS
                           if any(m in frame for m in marks)), "other (asyncio, stdlib)")
        totals[bucket] = totals.get(bucket, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    if not samples:
        return ["(no samples)"]
    report = [f"    {n / samples:6.1%}  {name}" for name, n in sorted(totals.items(), key=lambda kv: -kv[1])]
    report.append("    hottest lines:")
    report += [f"    {n / samples:6.1%}  {frame[:100]}" for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:6]]
    return report


# --- main ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per target (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--login-clients", type=int, default=8, help="concurrent login clients (default 8)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--profile", action="store_true",
                        help="after measuring, sample Ronda's loop thread with py-spy and say where the time goes")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        spec = json.loads(args.loadgen)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        loaded = asyncio.run(_pyload(spec["url"], spec["duration"], spec["connections"], spec["headers"],
                                     spec["body"]))
        print(json.dumps(loaded))
        return 0
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    if args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --generator python")

    import httpx

    started = time.monotonic()
    cpus = os.cpu_count() or 1
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="ronda-bench-") as tmp:
        env, _ = prepare_ronda(Path(tmp))
        bare_port, ronda_port = free_port(), free_port()
        bare_env = {k: v for k, v in os.environ.items() if not k.startswith("RONDA_")}
        bare_url, ronda_url = f"http://{HOST}:{bare_port}", f"http://{HOST}:{ronda_port}"
        with serve(uvicorn_command("api_overhead:bare_app", bare_port), bare_env, bare_url + "/json"), \
                serve(uvicorn_command("ronda.app:app_from_environment", ronda_port, factory=True), env,
                      ronda_url + "/health") as ronda_proc:
            login = httpx.post(ronda_url + "/api/v1/auth/login", json={"username": USERNAME, "password": PASSWORD},
                               timeout=30)
            login.raise_for_status()
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            me_path = "/api/v1/users/me"
            if httpx.get(ronda_url + me_path, headers=auth, timeout=10).status_code != 200:
                me_path = "/api/v1/auth/me"  # users/me not built yet: the same auth path, one route over
                httpx.get(ronda_url + me_path, headers=auth, timeout=10).raise_for_status()

            results.append(measure("bare Starlette GET /json", bare_url + "/json", args))
            results.append(measure("Ronda GET /health", ronda_url + "/health", args))
            results.append(measure(f"Ronda GET {me_path}", ronda_url + me_path, args, headers=auth))
            login_body = json.dumps({"username": USERNAME, "password": PASSWORD})
            logins = measure("Ronda POST /api/v1/auth/login", ronda_url + "/api/v1/auth/login", args,
                             body=login_body, connections=args.login_clients)
            profiles: list[tuple[str, list[str]]] = []
            if args.profile:
                run = run_wrk if args.generator == "wrk" else run_python_load
                seconds = 5
                for path, headers in (("/health", None), (me_path, auth)):
                    profiles.append((path, profile(
                        ronda_proc.pid, seconds,
                        lambda p=path, h=headers: run(ronda_url + p, seconds - 1, args.connections, headers=h),
                    )))
        verify_ms, verify_best, memory, passes, lanes = argon2_cost(10)

    base = results[0].rps
    print()
    print(f"Load generator: {args.generator}, {args.connections} keep-alive connections, {args.duration:g} s per "
          f"target after {args.warmup:g} s warm-up; {cpus} CPUs; servers: uvicorn + httptools + uvloop, 1 worker")
    print()
    print(f"{'target':<34} {'req/s':>10} {'p99 ms':>9} {'requests':>9} {'errors':>7} {'vs bare':>8}  target")
    print("-" * 92)
    for index, result in enumerate(results):
        ratio = result.rps / base if base else 0.0
        goal = ""
        if index > 0:
            wanted = TARGETS["health" if index == 1 else "me"]
            met = ratio >= wanted
            goal = f">= {wanted:.0%} {'met' if met else 'MISSED'}"
        print(f"{result.name:<34} {result.rps:>10.0f} {result.p99_ms:>9.2f} {result.requests:>9} "
              f"{result.errors:>7} {ratio:>8.1%}  {goal}")
    print()
    print(f"Argon2id verify ({memory} KiB, t={passes}, p={lanes}): median {verify_ms:.1f} ms, "
          f"best {verify_best:.1f} ms "
          f"(one core: at most {1000 / verify_ms:.0f} verifications/s)")
    ceiling = cpus * 1000 / verify_ms
    print(f"Logins through POST /api/v1/auth/login, {args.login_clients} concurrent clients, hashing capped at "
          f"{cpus} (RONDA_MAX_CONCURRENT_HASHES default = CPU count): {logins.rps:.1f} logins/s, "
          f"p99 {logins.p99_ms:.0f} ms, {logins.requests} logins, {logins.errors} errors "
          f"(hash-bound ceiling about {ceiling:.0f}/s)")
    if not args.profile and any(r.rps / base < TARGETS["health" if i == 1 else "me"]
                                for i, r in enumerate(results) if i and base):
        print("A target was missed: run with --profile (needs py-spy) to see where Ronda's time goes.")
    for path, lines in profiles:
        print(f"\nWhere Ronda's event-loop thread spends GET {path} (py-spy samples, profiled run):")
        print("\n".join(lines))
    print(f"\nTotal time {time.monotonic() - started:.0f} s")
    bad = [r.name for r in [*results, logins] if r.errors]
    if bad:
        print(f"ERRORS in: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

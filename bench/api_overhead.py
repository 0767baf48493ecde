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
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    HOST,
    PASSWORD,
    USERNAME,
    free_port,
    load_runner,
    pick_generator,
    prepare_ronda,
    profile,
    serve,
    uvicorn_command,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET = "bench-secret-" + "b" * 40
TARGETS = {"health": 0.30, "me": 0.15}  # share of bare Starlette's rate the issue asks for


async def _bare_json(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": "0.0.0"})


bare_app = Starlette(routes=[Route("/json", _bare_json)])


# --- load generation ---------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    rps: float
    p99_ms: float
    requests: int
    errors: int
    generator: str


def measure(name: str, url: str, args: argparse.Namespace, *, headers: dict[str, str] | None = None,
            body: str | None = None, connections: int | None = None) -> Result:
    run = load_runner(args.generator)
    conns = connections or args.connections
    run(url, args.warmup, conns, headers=headers, body=body)  # warm caches, pools and JIT-free paths
    found = run(url, args.duration, conns, headers=headers, body=body)
    return Result(name, found["rps"], found["p99"], found["requests"], found["errors"], args.generator)


# --- Ronda setup -------------------------------------------------------------------------------------


def prepare(data_dir: Path) -> dict[str, str]:
    """A fresh SQLite database, migrated, with one user; returns the server's environment."""
    return prepare_ronda(f"sqlite+aiosqlite:///{data_dir / 'bench.db'}", data_dir, SECRET)


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
    args = parser.parse_args()
    args.generator = pick_generator(args.generator)

    import httpx

    started = time.monotonic()
    cpus = os.cpu_count() or 1
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="ronda-bench-") as tmp:
        env = prepare(Path(tmp))
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
                run = load_runner(args.generator)
                seconds = 5
                for path, headers in (("/health", None), (me_path, auth)):
                    profiles.append((path, profile(
                        ronda_proc.pid, seconds,
                        lambda p=path, h=headers: run(ronda_url + p, seconds - 1, args.connections, headers=h),
                        BUCKETS,
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

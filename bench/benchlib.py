"""What the HTTP benchmarks share: server processes, a fresh Ronda database, load generators, profiling.

The scripts in this folder import it as `benchlib` (they run as `python bench/<script>.py`, which puts
this folder on sys.path). Run as a script, it is the fallback load generator's own process:
`python bench/benchlib.py --loadgen '<json spec>'` prints one JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
USERNAME = "bench-admin"
PASSWORD = "bench password 0123456789"

# --- server processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app: str, port: int, *, factory: bool = False) -> list[str]:
    """One uvicorn worker with httptools and uvloop on loopback: how every benchmark serves."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--http", "httptools",
               "--loop", "uvloop", "--workers", "1", "--log-level", "warning", "--no-access-log"]
    return command + (["--factory"] if factory else [])


@contextmanager
def serve(command: list[str], env: dict[str, str], probe: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until `probe` answers 200, stop it afterwards."""
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


@contextmanager
def ronda_server(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    with serve(uvicorn_command("ronda.app:app_from_environment", port, factory=True), env,
               f"http://{HOST}:{port}/health") as proc:
        yield proc


def prepare_ronda(database_url: str, data_dir: Path, secret: str) -> dict[str, str]:
    """Migrate a database, create the bench admin, and return the server's environment: rate limits
    off, warnings only, no Redis, Argon2 and hashing concurrency at their defaults."""
    from ronda.config import Settings
    from ronda.core.migrate import upgrade
    from ronda.users.admin import create_admin

    upgrade(database_url)
    settings = Settings(_env_file=None, database_url=database_url, data_dir=data_dir,  # type: ignore[call-arg]
                        secret_key=secret, rate_limits="off", log_level="WARNING")
    asyncio.run(create_admin(settings, username=USERNAME, email="bench@example.com", password=PASSWORD,
                             tenant="Bench", role="admin"))
    env = {**os.environ, "RONDA_DATABASE_URL": database_url, "RONDA_DATA_DIR": str(data_dir),
           "RONDA_SECRET_KEY": secret, "RONDA_RATE_LIMITS": "off", "RONDA_LOG_LEVEL": "WARNING"}
    for name in ("RONDA_REDIS_URL", "RONDA_ARGON2_MEMORY_KIB", "RONDA_ARGON2_TIME_COST", "RONDA_ARGON2_PARALLELISM",
                 "RONDA_MAX_CONCURRENT_HASHES"):
        env.pop(name, None)
    return env


def fresh_postgres(url: str | None, database: str) -> str:
    """`url` when given; else `database` on the local server, dropped and made again."""
    if url:
        return url
    for tool in ("dropdb", "createdb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found (PostgreSQL client tools); use --pg-url or --databases sqlite")
    subprocess.run(["dropdb", "-h", HOST, "-U", "postgres", "--if-exists", database], check=True)
    subprocess.run(["createdb", "-h", HOST, "-U", "postgres", database], check=True)
    return f"postgresql+asyncpg://postgres@{HOST}:5432/{database}"


def drop_postgres(url: str | None, database: str) -> None:
    if url is None and shutil.which("dropdb"):
        subprocess.run(["dropdb", "-h", HOST, "-U", "postgres", "--if-exists", database], check=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc): a per-request cost that other load
    on the machine does not distort the way it distorts throughput."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 15.0) -> None:
    """Wait until the server is idle: requests a slow target left queued would bill the next one."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.05:
            return


# --- load generators -----------------------------------------------------------------------------
# Both return {"rps", "p50", "p99" (ms), "requests", "errors" (non-2xx/3xx and socket errors)}.

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(url: str, duration: float, connections: int, headers: dict[str, str] | None = None,
            body: str | None = None) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(int(duration), 1)}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:  # wrk sends a body only through a Lua script
            script = Path(tmp) / "post.lua"
            script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            command += ["-s", str(script)]
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                             timeout=duration + 30).stdout

    def grab(pattern: str) -> str:
        found = re.search(pattern, out, re.M)
        if found is None:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        return found.group(1)

    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return {"rps": float(grab(r"Requests/sec:\s+([\d.]+)")), "p50": _wrk_ms(grab(r"^\s+50%\s+(\S+)")),
            "p99": _wrk_ms(grab(r"^\s+99%\s+(\S+)")), "requests": int(grab(r"(\d+) requests in")), "errors": errors}


async def _pyload(url: str, duration: float, connections: int, headers: dict[str, str],
                  body: str | None) -> dict[str, Any]:
    """Keep-alive HTTP/1.1 over raw asyncio streams, bounded by `duration`: little client overhead."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    payload = (body or "").encode()
    lines = [f"{'POST' if body is not None else 'GET'} {target} HTTP/1.1", f"Host: {parts.netloc}",
             "Connection: keep-alive"]
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
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length is None:
                    raise RuntimeError("response without Content-Length")
                await reader.readexactly(int(length.group(1)))
                latencies.append(time.perf_counter() - started)
                if head[9:10] not in (b"2", b"3"):
                    errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0.0

    return {"rps": len(latencies) / elapsed, "p50": pct(0.50), "p99": pct(0.99), "requests": len(latencies),
            "errors": errors}


def run_python_load(url: str, duration: float, connections: int, headers: dict[str, str] | None = None,
                    body: str | None = None) -> dict[str, Any]:
    """The fallback generator, in its own process so it never shares the bench's event loop."""
    spec = json.dumps({"url": url, "duration": duration, "connections": connections, "headers": headers or {},
                       "body": body})
    out = subprocess.run([sys.executable, __file__, "--loadgen", spec], capture_output=True, text=True,
                         check=True, timeout=duration + 30).stdout
    return dict(json.loads(out))


def pick_generator(choice: str) -> str:
    """'auto' means wrk when installed (apt-get install wrk), else the Python client."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk); use --generator python")
    return choice


def load_runner(generator: str) -> Callable[..., dict[str, Any]]:
    return run_wrk if generator == "wrk" else run_python_load


# --- profiling -----------------------------------------------------------------------------------

Buckets = Sequence[tuple[str, tuple[str, ...]]]


def profile(pid: int, seconds: int, run_load: Callable[[], object], buckets: Buckets) -> list[str]:
    """Sample the server with py-spy while `run_load` drives it, and sum the samples up: each
    event-loop sample goes to the bucket of its innermost frame that matches one (py-spy frames read
    "func (file:line)"; the order of `buckets` breaks ties within a frame); then the hottest frames."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return ["    (py-spy not installed: `pip install py-spy` to see where the time goes)"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        proc = subprocess.Popen([spy, "record", "--nonblocking", "-p", str(pid), "-d", str(seconds), "-r", "200",
                                 "-f", "raw", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        run_load()
        proc.wait(timeout=seconds + 30)
        if not out.exists():
            return ["    (py-spy could not attach; it needs ptrace permission)"]
        lines = out.read_text().splitlines()
        if os.environ.get("RONDA_BENCH_RAW_PROFILE"):  # keep the raw samples for a closer look
            shutil.copy(out, os.environ["RONDA_BENCH_RAW_PROFILE"])
    totals: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        if "Runner.run" not in stack:
            bucket = "other threads (database driver threads)"
        elif frames[-1].startswith("Runner.run"):
            bucket = "idle: event loop waiting (I/O, database thread)"
        else:
            bucket = next((name for frame in reversed(frames) for name, marks in buckets
                           if any(m in frame for m in marks)), "other (asyncio, stdlib)")
            own[frames[-1]] = own.get(frames[-1], 0) + n
        totals[bucket] = totals.get(bucket, 0) + n
    if not samples:
        return ["    (no samples)"]
    report = [f"    {n / samples:6.1%}  {name}" for name, n in sorted(totals.items(), key=lambda kv: -kv[1])]
    report.append("    hottest frames on the event loop:")
    report += [f"    {n / samples:6.1%}  {frame[:110]}" for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:8]]
    return report


def _loadgen_main() -> int:
    parser = argparse.ArgumentParser(description="benchlib's load generator process")
    parser.add_argument("--loadgen", required=True)
    spec = json.loads(parser.parse_args().loadgen)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_pyload(spec["url"], spec["duration"], spec["connections"], spec["headers"],
                                         spec["body"]))))
    return 0


if __name__ == "__main__":
    sys.exit(_loadgen_main())

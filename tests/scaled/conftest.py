"""Two real `ronda` server processes on the suite's database (and Redis when there is one).

The pair is started once for the package: every test makes its own users (and comes from its own
address), so tests never meet, and starting interpreters is the slow part of these tests.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.conftest import free_port

SECRET = "test-secret-" + "x" * 40


@dataclass(frozen=True)
class Pair:
    """Two server processes that must behave as one server."""

    urls: tuple[str, str]
    redis: bool  # whether they share a Redis (rate limits and events)

    def __getitem__(self, index: int) -> str:
        return self.urls[index % 2]


def server_env(database_url: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "RONDA_DATABASE_URL": database_url,
        "RONDA_DATA_DIR": str(data_dir),
        "RONDA_SECRET_KEY": SECRET,
        "RONDA_LOG_LEVEL": "WARNING",
        "RONDA_ARGON2_MEMORY_KIB": "8192",
        "RONDA_ARGON2_TIME_COST": "1",
        **overrides,
    }


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server process for {url} did not start")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def optional_redis(request: pytest.FixtureRequest) -> str:
    """The test Redis, or "" where it is unreachable (outside CI, where that fails the run)."""
    try:
        return str(request.getfixturevalue("redis_url"))
    except pytest.skip.Exception:
        return ""


@pytest.fixture(scope="package")
def pair(migrated: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Rate limits on, as deployed; both processes started at once, then waited for."""
    redis_url = optional_redis(request)
    env = server_env(migrated, data_dir, RONDA_RATE_LIMITS="on", RONDA_REDIS_URL=redis_url)
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "--factory", "ronda.app:app_from_environment",
                       "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            procs.append(subprocess.Popen(command, env=env))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_healthy(url, proc)
        yield Pair((urls[0], urls[1]), bool(redis_url))
    finally:
        stop(procs)


def random_address() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


def new_client() -> httpx.AsyncClient:
    """A client that comes from an address of its own (uvicorn trusts X-Forwarded-For from loopback):
    the per-address login budget (ten a minute, in a shared Redis) is then its alone."""
    return httpx.AsyncClient(timeout=30, headers={"X-Forwarded-For": random_address()})


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client

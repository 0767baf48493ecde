"""`ronda serve --workers 2`: one command, two worker processes, one server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, Factory, free_port
from tests.ratelimit.support import statuses, within_one_second
from tests.scaled.conftest import optional_redis, server_env, wait_healthy
from tests.scaled.support import ME
from tests.support import assert_error


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    supervisor: int
    redis: bool


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's children that are uvicorn workers (multiprocessing spawns them)."""
    found = []
    for task in os.listdir(f"/proc/{supervisor}/task"):
        with open(f"/proc/{supervisor}/task/{task}/children") as handle:
            for pid in handle.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                    if b"spawn_main" in cmd.read():
                        found.append(int(pid))
    return sorted(found)


def owner_of(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which process holds the server's end of the connection from `client_port`."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.read().splitlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                    inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


@pytest.fixture(scope="module")
def served(migrated: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    if not sys.platform.startswith("linux"):
        pytest.skip("finds the worker processes through /proc")
    redis_url = optional_redis(request)
    port = free_port()
    env = server_env(migrated, data_dir, RONDA_RATE_LIMITS="on", RONDA_REDIS_URL=redis_url)
    # Its own session: the supervisor and its workers are stopped together, as one group.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ronda.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, seconds=45)
        deadline = time.monotonic() + 30
        while len(worker_pids(proc.pid)) < 2:  # whether each answers: connections_per_worker
            assert time.monotonic() < deadline, "two workers did not come up"
            time.sleep(0.2)
        yield Served(url, port, proc.pid, bool(redis_url))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        reap_group(proc.pid)


def reap_group(group: int) -> None:
    """Nothing of the group may outlive the test: workers exit after their supervisor, or are killed."""
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(group, signal.SIGKILL if time.monotonic() > deadline else 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


async def connections_per_worker(served: Served, workers: list[int], each: int) -> dict[int, list[httpx.AsyncClient]]:
    """`each` open connections held by every worker. Which worker accepts a connection is the kernel's
    choice (and one wakes up and takes a whole batch): connect one at a time until each has its share."""
    held: dict[int, list[httpx.AsyncClient]] = {pid: [] for pid in workers}
    deadline = time.monotonic() + 30
    try:
        while any(len(clients) < each for clients in held.values()):
            counts = {pid: len(clients) for pid, clients in held.items()}
            assert time.monotonic() < deadline, f"connections held per worker: {counts}"
            client = httpx.AsyncClient(base_url=served.url, timeout=30)
            response = await client.get("/health")
            assert response.status_code == 200
            owner = owner_of(served.port, response.extensions["network_stream"].get_extra_info("client_addr")[1],
                             workers)
            assert owner in held, (owner, workers)
            if len(held[owner]) < each:
                held[owner].append(client)
            else:
                await client.aclose()
    except BaseException:
        await close_all(held)
        raise
    return held


async def close_all(held: dict[int, list[httpx.AsyncClient]]) -> None:
    for clients in held.values():
        for client in clients:
            await client.aclose()


async def test_two_workers_answer_and_share_one_rate_budget(served: Served, factory: Factory) -> None:
    workers = worker_pids(served.supervisor)
    assert len(workers) == 2
    held = await connections_per_worker(served, workers, each=10)
    try:
        viewer = await factory.user("viewer")
        for pid in workers:  # each worker answers, with the same data
            me = await held[pid][0].get(ME, headers=viewer.headers)
            assert me.status_code == 200 and me.json()["id"] == viewer.id
        if not served.redis:
            return  # without Redis each worker keeps its own budget (ronda serve says so)
        clients = [client for pid in workers for client in held[pid]]

        async def fire(account: Account) -> list[httpx.Response]:
            return list(await asyncio.gather(*(c.get(ME, headers=account.headers) for c in clients)))

        # Ten requests to each worker within one second: ten in all are served, not ten each.
        responses = await within_one_second(lambda: factory.user("viewer"), fire)
        assert sorted(statuses(responses)) == [200] * 10 + [429] * 10
        for refused in (r for r in responses if r.status_code == 429):
            assert_error(refused, 429, "RATE_LIMITED")
    finally:
        await close_all(held)

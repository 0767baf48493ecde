"""Test harness: a real database built by the migrations, a real server on loopback, real HTTP.

RONDA_TEST_DATABASE_URL picks the database (default: a fresh SQLite file); with CI=true an
unreachable PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import text

from ronda.app import create_app
from ronda.config import Settings
from ronda.core.db import create_engine
from ronda.core.migrate import upgrade_async

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "correct horse battery staple"
FAST_HASH = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "argon2_parallelism": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ronda-data")


@pytest.fixture(scope="session")
def database_url(data_dir: Path) -> str:
    return os.environ.get("RONDA_TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'test.db'}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("RONDA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} is unreachable and CI=true: {exc}")
        pytest.skip(f"Redis at {url} unreachable")
    return url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated(database_url: str) -> str:
    """Build the schema from an empty database by running every migration."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
    except OSError as exc:
        pytest.fail(f"test database {database_url} unreachable: {exc}")
    finally:
        await engine.dispose()
    await upgrade_async(database_url)
    return database_url


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": "test-secret-" + "x" * 40,
        "rate_limits": "off",
        "log_level": "WARNING",
        **FAST_HASH,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class LiveServer:
    url: str
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_server(settings: Settings) -> LiveServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "test server did not start"
    return LiveServer(f"http://127.0.0.1:{config.port}", app, server, task)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def live(migrated: str, data_dir: Path) -> AsyncIterator[LiveServer]:
    """The shared server: rate limits off so tests are not throttled by each other."""
    server = await start_server(make_settings(migrated, data_dir))
    yield server
    await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def server_factory(migrated: str, data_dir: Path) -> AsyncIterator[Any]:
    """Start extra in-process servers with other settings (rate limits on, Redis, ...)."""
    started: list[LiveServer] = []

    async def factory(**overrides: Any) -> LiveServer:
        server = await start_server(make_settings(migrated, data_dir, **overrides))
        started.append(server)
        return server

    yield factory
    for server in started:
        await server.stop()


@pytest.fixture
def process_server(migrated: str, data_dir: Path) -> Iterator[Any]:
    """Start `ronda` server processes (real uvicorn, separate interpreters) on loopback."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(**env_overrides: str) -> str:
        port = free_port()
        env = {
            **os.environ,
            "RONDA_DATABASE_URL": migrated,
            "RONDA_DATA_DIR": str(data_dir),
            "RONDA_SECRET_KEY": "test-secret-" + "x" * 40,
            "RONDA_LOG_LEVEL": "WARNING",
            "RONDA_ARGON2_MEMORY_KIB": "8192",
            "RONDA_ARGON2_TIME_COST": "1",
            **env_overrides,
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "ronda.app:app_from_environment",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server process on {port} did not start")

    yield spawn
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=10)


# --- factories -------------------------------------------------------------------------------


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    role: str
    tenant_id: str
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    """Creates tenants and users straight through the service layer, then logs in over HTTP."""

    def __init__(self, live: LiveServer, http: httpx.AsyncClient) -> None:
        self.live = live
        self.http = http
        self.runtime = live.app.state.runtime

    async def tenant(self, name: str | None = None, **fields: Any) -> str:
        from ronda.core.db import transaction
        from ronda.tenants.models import Tenant

        name = name or f"Tenant {secrets.token_hex(4)}"
        async with transaction(self.runtime.sessions) as session:
            tenant = Tenant(name=name, slug=name.lower().replace(" ", "-"), **fields)
            session.add(tenant)
            await session.flush()
            return tenant.id

    async def user(
        self, role: str = "admin", tenant_id: str | None = None, login: bool = True, **fields: Any
    ) -> Account:
        from ronda.core.db import transaction
        from ronda.users.models import User

        tenant_id = tenant_id or await self.tenant()
        name = f"{role}-{secrets.token_hex(4)}"
        password_hash = await self.runtime.passwords.hash(PASSWORD)
        async with transaction(self.runtime.sessions) as session:
            user = User(
                tenant_id=tenant_id,
                username=name,
                email=f"{name}@example.com",
                full_name=name.title(),
                password_hash=password_hash,
                role=role,
                **fields,
            )
            session.add(user)
            await session.flush()
            account = Account(user.id, name, user.email, PASSWORD, role, tenant_id)
        if login:
            account.token = await self.login(account)
        return account

    async def login(self, account: Account) -> str:
        response = await self.http.post(
            "/api/v1/auth/login", json={"username": account.username, "password": account.password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def api_key(self, account: Account, permissions: list[str], kind: str = "standard") -> str:
        response = await self.http.post(
            "/api/v1/api-keys",
            headers=account.headers,
            json={"name": "test key", "permissions": permissions, "kind": kind},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["key"])


@pytest_asyncio.fixture(loop_scope="session")
async def factory(live: LiveServer, client: httpx.AsyncClient) -> Factory:
    return Factory(live, client)

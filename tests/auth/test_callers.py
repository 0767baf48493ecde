"""Remembered callers (auth/callers.py) and the auth epoch (auth/epoch.py): fewer reads, never a stale answer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update

from ronda.auth import authenticator
from ronda.auth.authenticator import touch_statement
from ronda.auth.epoch import FileEpoch, RedisEpoch
from ronda.core.db import create_engine, create_session_factory, transaction
from ronda.users.models import User
from tests.conftest import Factory
from tests.support import assert_error

ME = "/api/v1/users/me"


@contextmanager
def statements(factory: Factory) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = factory.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def remembers(factory: Factory) -> bool:
    """SQLite (a file epoch) remembers; PostgreSQL without Redis reads every request's session."""
    return factory.live.app.state.authenticator.callers.epoch is not None


async def test_a_remembered_caller_reads_nothing_and_gets_the_same_answer(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("analyst")
    first = await client.get(ME, headers=user.headers)
    assert first.status_code == 200, first.text
    with statements(factory) as seen:
        again = await client.get(ME, headers=user.headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["content-type"] == "application/json"
    if remembers(factory):
        assert seen == []
    else:
        assert any("auth_sessions" in statement for statement in seen)


async def test_a_profile_change_shows_on_the_next_request(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer")
    assert (await client.get(ME, headers=user.headers)).json()["full_name"] != "Ada Lovelace"
    changed = await client.patch(ME, headers=user.headers, json={"full_name": "Ada Lovelace"})
    assert changed.status_code == 200, changed.text
    assert (await client.get(ME, headers=user.headers)).json()["full_name"] == "Ada Lovelace"


async def test_a_change_made_through_another_engine_is_seen_at_once(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """The CLI or another server changes a user: the remembered caller is not trusted any more."""
    admin = await factory.user("admin")
    assert (await client.get("/api/v1/users", headers=admin.headers)).status_code == 200
    engine = create_engine(factory.runtime.settings.resolved_database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            await session.execute(update(User).where(User.id == admin.id).values(role="viewer"))
    finally:
        await engine.dispose()
    assert_error(await client.get("/api/v1/users", headers=admin.headers), 403, "FORBIDDEN")
    assert (await client.get(ME, headers=admin.headers)).json()["role"] == "viewer"


async def test_only_changes_to_who_a_caller_is_move_the_epoch(factory: Factory) -> None:
    epoch = factory.live.app.state.authenticator.callers.epoch
    if epoch is None:  # PostgreSQL without Redis: nothing is remembered, nothing to move
        return
    user = await factory.user("viewer", login=False)
    before = await epoch.current()
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(touch_statement("key_that_does_not_exist", datetime.now(UTC)))
        row = (await session.execute(select(User).where(User.id == user.id))).scalar_one()
        row.full_name = row.full_name  # no net change
    assert await epoch.current() == before
    try:
        async with transaction(factory.runtime.sessions) as session:
            row = (await session.execute(select(User).where(User.id == user.id))).scalar_one()
            row.full_name = "rolled back"
            await session.flush()
            raise RuntimeError("abandon the change")
    except RuntimeError:
        pass
    assert await epoch.current() == before
    async with transaction(factory.runtime.sessions) as session:
        row = (await session.execute(select(User).where(User.id == user.id))).scalar_one()
        row.full_name = "committed"
    assert await epoch.current() == before + 1


def test_a_file_epoch_moved_by_another_process_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "ronda.db-authepoch"
    here = FileEpoch(path)
    start = here.read()
    script = "import sys; from pathlib import Path; from ronda.auth.epoch import FileEpoch; " \
             "[FileEpoch(Path(sys.argv[1])).bump() for _ in range(3)]"
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert here.read() == start + 3
    assert path.stat().st_mode & 0o077 == 0  # only the server's user may move it


async def test_a_redis_epoch_is_shared_and_an_unreachable_one_remembers_nothing(redis_url: str) -> None:
    one, other = RedisEpoch(redis_url), RedisEpoch(redis_url)
    try:
        before = await one.current()
        assert before is not None
        other.bump()
        assert await one.current() == before + 1
    finally:
        await one.close()
        await other.close()
    away = RedisEpoch("redis://127.0.0.1:1/0")
    try:
        assert await away.current() is None
        away.bump()  # logged, never raised: the change itself is already committed
    finally:
        await away.close()


async def test_a_remembered_key_is_refused_once_it_expires(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await factory.user("admin")
    created = await client.post("/api/v1/api-keys", headers=admin.headers,
                                json={"name": "short-lived", "permissions": ["devices_read"], "expires_in_days": 1})
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}
    for _ in range(2):  # the second answer comes from the remembered caller where the epoch allows
        assert (await client.get("/api/v1/devices", headers=key)).status_code == 200
    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(authenticator, "utcnow", lambda: later)
    assert_error(await client.get("/api/v1/devices", headers=key), 401, "UNAUTHORIZED")


async def test_a_remembered_callers_tenant_is_read_from_memory_and_still_changes_for_real(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    assert (await client.get("/api/v1/devices", headers=admin.headers)).status_code == 200
    with statements(factory) as seen:
        assert (await client.get("/api/v1/devices", headers=admin.headers)).status_code == 200
    # Remembered: no statement reads the tenant. Otherwise authentication reads it (joined to the session).
    assert any("tenants" in statement for statement in seen) != remembers(factory)
    # A change through the tenant row the caller brought (PATCH reads it with session.get) is written,
    # and the next request sees it.
    changed = await client.patch("/api/v1/tenants/current", headers=admin.headers,
                                 json={"compliance_policy": {"stale_after_days": 30}})
    assert changed.status_code == 200, changed.text
    current = await client.get("/api/v1/tenants/current", headers=admin.headers)
    assert current.json()["compliance_policy"]["stale_after_days"] == 30

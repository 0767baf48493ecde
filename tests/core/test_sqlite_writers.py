"""SQLite write transactions of one process queue on the event loop (core/db.py WriterTurns)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ronda.core.db import WriterTurns, create_engine, create_session_factory, transaction


async def _engine(tmp_path: Path, busy_timeout: float = 30.0) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}", busy_timeout=busy_timeout)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS hits (n INTEGER)"))
    return engine


async def test_many_concurrent_writers_all_commit_and_at_most_two_are_open(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessions = create_session_factory(engine)
    open_now = most = 0

    def began(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # Counted as BEGIN IMMEDIATE is sent: past the queue, before SQLite's own busy handler.
        nonlocal open_now, most
        if statement == "BEGIN IMMEDIATE":
            open_now += 1
            most = max(most, open_now)

    def ended(_conn: object) -> None:
        nonlocal open_now
        open_now -= 1

    event.listen(engine.sync_engine, "before_cursor_execute", began)
    event.listen(engine.sync_engine, "commit", ended)
    event.listen(engine.sync_engine, "rollback", ended)

    async def write(n: int) -> None:
        async with transaction(sessions) as session:
            await session.execute(text("INSERT INTO hits VALUES (:n)"), {"n": n})
            await asyncio.sleep(0.005)  # a request's own work while it holds its transaction

    try:
        await asyncio.gather(*(write(n) for n in range(40)))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM hits"))).scalar() == 40
        assert 1 <= most <= WriterTurns.WRITERS
    finally:
        await engine.dispose()


async def test_a_failed_write_gives_its_turn_back(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessions = create_session_factory(engine)
    try:
        for _ in range(WriterTurns.WRITERS * 3):
            with pytest.raises(OperationalError):
                async with transaction(sessions) as session:
                    await session.execute(text("INSERT INTO no_such_table VALUES (1)"))
        async with asyncio.timeout(10):  # turns leaked by the failures would make this wait 30 s
            async with transaction(sessions) as session:
                await session.execute(text("INSERT INTO hits VALUES (1)"))
    finally:
        await engine.dispose()


async def test_a_writer_that_waits_longer_than_the_busy_timeout_fails_like_sqlite(tmp_path: Path) -> None:
    engine = await _engine(tmp_path, busy_timeout=0.2)
    sessions = create_session_factory(engine)
    release = asyncio.Event()

    async def hold() -> None:
        async with transaction(sessions) as session:
            await session.execute(text("INSERT INTO hits VALUES (0)"))
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(WriterTurns.WRITERS)]
    try:
        await asyncio.sleep(0.1)
        with pytest.raises(OperationalError, match="database is locked"):
            async with transaction(sessions) as session:
                await session.execute(text("INSERT INTO hits VALUES (1)"))
    finally:
        release.set()
        # The holders' own outcome (the second may have met the first in SQLite's busy handler) is not
        # this test's subject; that they end is.
        await asyncio.gather(*holders, return_exceptions=True)
        await engine.dispose()

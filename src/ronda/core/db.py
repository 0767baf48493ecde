"""Engine, session factory and the declarative Base shared by every domain's models."""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from ronda.core.timeutil import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Set by the unit of work: a request that may write starts SQLite transactions with
# BEGIN IMMEDIATE, so a read-then-write never fails on a stale snapshot.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("ronda_write_intent", default=False)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        value = as_utc(value)
        if value is not None and dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write transaction
PG_CONNECT_TIMEOUT = 10.0  # seconds to establish a PostgreSQL connection (asyncpg's default: 60)
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL")


def create_engine(url: str, *, echo: bool = False, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> AsyncEngine:
    """`busy_timeout` (SQLite): how long a writer waits for another's write transaction."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": busy_timeout})
        _configure_sqlite(engine, busy_timeout)
        return engine
    # No pre-ping (a round trip per checkout): a connection that died since its last use fails its
    # request with 503 (core/errors.py), and SQLAlchemy replaces the pool's connections.
    # A server that accepts the connection but never answers (hung, overloaded) fails it after
    # PG_CONNECT_TIMEOUT, a 503, rather than after asyncpg's default of 60 s.
    engine = create_async_engine(url, echo=echo, pool_size=20, max_overflow=20,
                                 connect_args={"timeout": PG_CONNECT_TIMEOUT})
    _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_connect(dialect: Dialect, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # asyncpg reports an unreachable server as OSError (refused, no route) or TimeoutError; as the
        # driver's OperationalError it reaches the error handlers as a database error like any other.
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except (OSError, TimeoutError) as exc:
            raise dialect.loaded_dbapi.OperationalError(f"cannot connect to the database: {exc}") from exc


def _configure_sqlite(engine: AsyncEngine, busy_timeout: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so we can choose BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write_intent.get() else "BEGIN")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


def create_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession] | None:
    """Sessions for work that only reads, on PostgreSQL: in autocommit, so no BEGIN and no COMMIT
    (two round trips of a three-statement request). Under READ COMMITTED each statement takes its
    own snapshot inside a transaction too, so the reads see what they would have seen. None for
    SQLite, whose BEGIN costs no round trip and which relies on it (core/db.py's `begin` hook)."""
    if engine.dialect.name != "postgresql":
        return None
    return create_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))


_read_twins: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession] | None] = (
    weakref.WeakKeyDictionary())


def read_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """The autocommit twin of `sessions` (same engine; made once, forgotten with it) on PostgreSQL,
    `sessions` itself on SQLite: for reads that write nothing (see create_read_session_factory)."""
    if sessions not in _read_twins:
        _read_twins[sessions] = create_read_session_factory(sessions.kw["bind"])
    return _read_twins[sessions] or sessions


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession], *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """A unit of work outside a request (CLI, background jobs): commit on success."""
    token = write_intent.set(write)
    try:
        async with factory() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    finally:
        write_intent.reset(token)

"""The auth epoch: a counter that moves whenever something that decides who a caller is changes.

Verified callers are remembered (auth/callers.py) only while the epoch stands still. Any committed change
to users, tenants, sessions or API keys moves it, in every process that shares the database:
- SQLite: an 8-byte counter in a file beside the database, memory-mapped, so every process on the machine
  (servers, workers, the CLI) reads and moves the same one; a read is a memory load;
- scaled mode (RONDA_REDIS_URL): a Redis key, read once per cached request, moved with INCR;
- PostgreSQL without Redis: no epoch. Servers on other machines could change a user unseen, so callers
  are never remembered and every request reads its session from the database.

The change detection is SQLAlchemy's own: flushes of those rows and ORM UPDATE/DELETE statements against
their tables mark the session, and the counter moves after the commit, before the response leaves.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event, inspect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import ORMExecuteState, Session

log = logging.getLogger("ronda.auth")

AUTH_TABLES = frozenset({"users", "tenants", "auth_sessions", "api_keys"})
# Bookkeeping that never changes who a caller is (an API key's last use, recorded once a minute).
QUIET_COLUMNS: dict[str, frozenset[str]] = {"api_keys": frozenset({"last_used_at"})}
NEUTRAL = "auth_epoch_neutral"  # execution option for an UPDATE that only touches quiet columns
REDIS_KEY = "ronda:auth-epoch"
_CHANGED = "auth_changed"


class Epoch(Protocol):
    async def current(self) -> int | None:
        """The counter now; None when it cannot be read (remember nothing then)."""

    def bump(self) -> None: ...


class LocalEpoch:
    """One process's counter, for a database no other process can open (SQLite in memory)."""

    def __init__(self) -> None:
        self.value = 0

    async def current(self) -> int | None:
        return self.value

    def bump(self) -> None:
        self.value += 1


class FileEpoch:
    """A counter in a shared memory-mapped file; flock serialises the writers."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.path = path

    def read(self) -> int:
        return int.from_bytes(self._map[:8], "little")

    async def current(self) -> int | None:
        return self.read()

    def bump(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._map[:8] = (self.read() + 1).to_bytes(8, "little")
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class RedisEpoch:
    """The counter in Redis, shared by every server of a scaled deployment."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._reader: Any = None
        self._writer: Any = None

    async def current(self) -> int | None:
        from redis.exceptions import RedisError

        if self._reader is None:
            from redis.asyncio import Redis

            self._reader = Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
        try:
            value = await self._reader.get(REDIS_KEY)
        except (RedisError, OSError):
            return None  # Redis away: read the database on every request until it is back
        return int(value or 0)

    def bump(self) -> None:
        # Synchronous on purpose: it runs in SQLAlchemy's after_commit hook, rarely (a login, a logout,
        # a user change), and must land before the response that reports the change.
        from redis import Redis
        from redis.exceptions import RedisError

        if self._writer is None:
            self._writer = Redis.from_url(self._url, socket_timeout=1, socket_connect_timeout=1)
        try:
            self._writer.incr(REDIS_KEY)
        except (RedisError, OSError):
            # Readers that cannot reach Redis either stop remembering; readers that can keep what they
            # have until the next change or until their entry's age runs out (callers.MAX_AGE).
            log.error("could not move the auth epoch in Redis; cached callers may lag up to a minute")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.aclose()
            self._reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_EPOCHS: dict[URL, Epoch] = {}  # by database: any engine on it (the CLI's, a test's) moves the same epoch


def epoch_for(settings: Any, url: URL) -> Epoch | None:
    """The epoch this deployment can share (see the module's text), registered for the database at `url`."""
    if not settings.auth_cache:
        return None
    epoch: Epoch | None
    if settings.redis_url:
        epoch = RedisEpoch(settings.redis_url)
    elif settings.is_sqlite:
        database = url.database
        if not database or database == ":memory:":
            epoch = _EPOCHS.get(url) or LocalEpoch()
        else:
            try:
                epoch = FileEpoch(Path(database + "-authepoch"))
            except OSError as exc:
                log.warning("auth cache off: cannot open %s-authepoch (%s)", database, exc.strerror)
                return None
    else:
        return None
    _EPOCHS[url] = epoch
    return epoch


def _registered(session: Session) -> Epoch | None:
    bind = session.bind
    if not _EPOCHS or not isinstance(bind, Engine | Connection):
        return None
    return _EPOCHS.get(bind.engine.url)


def _changes_caller(obj: object) -> bool:
    table = getattr(obj, "__tablename__", None)
    if table not in AUTH_TABLES:
        return False
    quiet = QUIET_COLUMNS.get(table, frozenset())
    state = inspect(obj)
    return any(attr.key not in quiet and attr.history.has_changes() for attr in state.attrs)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: object, _instances: object) -> None:
    if session.info.get(_CHANGED) or _registered(session) is None:
        return
    if any(getattr(obj, "__tablename__", None) in AUTH_TABLES for obj in session.deleted) or any(
        _changes_caller(obj) for obj in session.dirty
    ):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.execution_options.get(NEUTRAL):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in AUTH_TABLES and _registered(state.session) is not None:
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        epoch = _registered(session)
        if epoch is not None:
            epoch.bump()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)

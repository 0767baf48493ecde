"""SQLite for the async engine: statements run on the event loop when they cannot block it.

SQLAlchemy's aiosqlite dialect runs over this module (core/db.py passes `dbapi()` as the
engine's DBAPI module). aiosqlite sends every step of every statement to the connection's
thread (cursor, execute, fetch, close: four thread hops for a SELECT, each a wake-up of another
thread and a GIL hand-over, plus a greenlet switch each way), which costs far more than the
statement itself. Here a statement runs directly, on the event loop, when it cannot wait long:

- a SELECT, under a time budget: one that runs past READ_BUDGET is interrupted (a SELECT is
  interrupted without side effects) and run again in the connection's thread;
- anything inside this engine's write transaction (BEGIN IMMEDIATE, taken after the engine's
  `WriteGate`): in WAL mode the transaction already holds the database's write lock, so its
  statements and its COMMIT never wait for another connection;
- COMMIT and ROLLBACK in WAL mode, and BEGIN (which takes no lock).

Everything else runs in the connection's thread: writes outside a write transaction, every write
when the database is not in WAL mode, the rest of a large result, and any statement that found
the database busy on the loop (where busy_timeout is 0) runs again there, with the configured
busy timeout. BEGIN travels with the transaction's first statement.

Write transactions of one engine pass its `WriteGate` one at a time, in order: the writers of
this process queue in the event loop instead of polling in SQLite's busy handler (sleeps of up
to 100 ms each). WAL checkpoints run in a connection's thread every CHECKPOINT_EVERY write
transactions (automatic checkpoints, which would run inside a COMMIT on the loop, are off for
our connections).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from queue import SimpleQueue
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.util import await_

FIRST_BATCH = 256  # rows fetched with the statement; the rest of a larger result comes from the thread
READ_BUDGET = 0.002  # seconds a SELECT may run on the event loop
PROGRESS_STEPS = 2000  # SQLite VM steps between checks of the budget
CHECKPOINT_EVERY = 200  # write transactions between PASSIVE checkpoints
SQLITE_BUSY = 5
SQLITE_INTERRUPT = 9
_STOP = object()

Job = tuple["asyncio.Future[Any] | None", Callable[[], Any]]
Result = tuple[Any, list[Any], "sqlite3.Cursor | None", int, "int | None"]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _worker(queue: SimpleQueue[Job]) -> None:
    while True:
        future, function = queue.get()
        try:
            result, ok = function(), True
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, ok = exc, False
        if future is not None:
            future.get_loop().call_soon_threadsafe(_settle, future, ok, result)
        if result is _STOP:
            return


# --- the write gate ------------------------------------------------------------------------------


class _Turns:
    """One event loop's queue for the gate: held or not, and who waits, in order."""

    __slots__ = ("held", "waiting")

    def __init__(self) -> None:
        self.held = False
        self.waiting: deque[asyncio.Future[None]] = deque()

    def release(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # handed over: still held
                return
        self.held = False


class WriteGate:
    """An engine's write transactions, one at a time per event loop, first come first served."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.commits = 0
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = weakref.WeakKeyDictionary()

    def enter(self) -> _Turns:
        """Take the gate; inside SQLAlchemy's greenlet, waiting (in the loop) only if it is taken."""
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = _Turns()
        if not turns.held:
            turns.held = True
            return turns
        turn: asyncio.Future[None] = loop.create_future()
        turns.waiting.append(turn)
        await_(self._wait(turns, turn))
        return turns

    async def _wait(self, turns: _Turns, turn: asyncio.Future[None]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await turn
        except TimeoutError:
            if turn.done() and not turn.cancelled():
                return  # handed over as the time ran out: ours
            raise sqlite3.OperationalError("database is locked") from None  # as SQLite says after busy_timeout
        except BaseException:
            if turn.done() and not turn.cancelled():
                turns.release()  # handed over to a caller that is gone: pass it on
            raise


# --- statements ----------------------------------------------------------------------------------


class _Ready:
    """An awaitable that is done at once."""

    def __await__(self) -> Iterator[None]:
        return iter(())


_READY = _Ready()


class _Later:
    """A statement that must run in the connection's thread, with the BEGIN still to send."""

    __slots__ = ("begin",)

    def __init__(self, begin: str | None) -> None:
        self.begin = begin


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def _execute(db: sqlite3.Connection, begin: str | None, sql: str, parameters: Any) -> Result:
    if begin:
        db.execute(begin)
    cursor: sqlite3.Cursor | None = db.cursor()
    try:
        cursor.execute(sql, parameters)  # type: ignore[union-attr]
        description = cursor.description  # type: ignore[union-attr]
        if description is None:
            return None, [], None, cursor.rowcount, cursor.lastrowid  # type: ignore[union-attr]
        rows = cursor.fetchmany(FIRST_BATCH)  # type: ignore[union-attr]
        if len(rows) < FIRST_BATCH:
            return description, rows, None, -1, cursor.lastrowid  # type: ignore[union-attr]
        keep, cursor = cursor, None  # more to come: the cursor stays open
        return description, rows, keep, -1, keep.lastrowid  # type: ignore[union-attr]
    finally:
        if cursor is not None:
            cursor.close()


def _executemany(db: sqlite3.Connection, begin: str | None, sql: str, rows: Sequence[Any]) -> Result:
    if begin:
        db.execute(begin)
    cursor = db.executemany(sql, rows)
    try:
        return None, [], None, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _fetch(cursor: sqlite3.Cursor, size: int | None) -> tuple[list[Any], bool]:
    rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
    done = size is None or len(rows) < size
    if done:
        cursor.close()
    return rows, done


class Connection:
    """One SQLite connection: its own thread for what may wait, the event loop for the rest."""

    def __init__(self, gate: WriteGate | None, busy_timeout: float) -> None:
        self._tx: SimpleQueue[Job] = SimpleQueue()
        self._thread = threading.Thread(target=_worker, args=(self._tx,), name="ronda-sqlite", daemon=True)
        self._thread.start()
        self._gate = gate
        self._busy_ms = max(int(busy_timeout * 1000), 0)
        self._db: sqlite3.Connection | None = None
        self._wal = False
        self._pending_begin: str | None = None
        self._turns: _Turns | None = None  # the write gate, while this connection holds it
        self._deadline = math.inf

    @classmethod
    async def open(cls, database: str, *, gate: WriteGate | None = None, pragmas: Sequence[str] = (),
                   timeout: float = 5.0, **kwargs: Any) -> Connection:
        """`timeout` is the busy timeout of what runs in the thread; on the loop it is 0."""
        connection = cls(gate, timeout)

        def connect() -> tuple[sqlite3.Connection, bool]:
            # Transactions are ours to begin (BEGIN or BEGIN IMMEDIATE), hence isolation_level=None.
            db = sqlite3.connect(database, isolation_level=None, timeout=0,
                                 **{**kwargs, "check_same_thread": False})
            try:
                db.execute(f"PRAGMA busy_timeout={connection._busy_ms}").close()
                for pragma in pragmas:
                    db.execute(pragma).close()
                wal = str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
                if wal:
                    db.execute("PRAGMA wal_autocheckpoint=0").close()  # see CHECKPOINT_EVERY
                db.execute("PRAGMA busy_timeout=0").close()
            except BaseException:
                db.close()
                raise
            return db, wal

        try:
            connection._db, connection._wal = await connection._call(connect)
        except BaseException:
            connection._tx.put_nowait((None, lambda: _STOP))
            raise
        return connection

    # --- aiosqlite's shape, as SQLAlchemy's adapter uses it --------------------------------------

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError("no active connection")
        return self._db

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._db

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        await self._end_async("commit")

    async def rollback(self) -> None:
        await self._end_async("rollback")

    async def close(self) -> None:
        try:
            if self._db is not None:
                db, self._db = self._db, None
                await self._call(db.close)
        finally:
            self._release()
            self._tx.put_nowait((None, lambda: _STOP))

    def stop(self) -> None:
        """Terminate without waiting (SQLAlchemy's terminate): close in the thread after any job
        still running there, then end the thread."""
        db, self._db = self._db, None
        if db is not None:
            self._tx.put_nowait((None, db.close))
        self._tx.put_nowait((None, lambda: _STOP))
        self._release()

    # --- transactions ----------------------------------------------------------------------------

    def begin(self, immediate: bool) -> None:
        """From SQLAlchemy's `begin` event, inside its greenlet: BEGIN goes out with the first
        statement; a write transaction first passes the engine's write gate."""
        if immediate and self._gate is not None and self._turns is None:
            self._turns = self._gate.enter()
        self._pending_begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def _ending(self, how: str) -> Callable[[], None] | None:
        """What ends the transaction (None: nothing to end); the gate is released by the caller."""
        if self._pending_begin is not None:  # no statement ran
            self._pending_begin = None
            return None
        db = self._db
        if db is None or not db.in_transaction:
            return None
        return db.commit if how == "commit" else db.rollback

    def end(self, how: str) -> None:
        """COMMIT or ROLLBACK, inside SQLAlchemy's greenlet."""
        wrote = self._turns is not None
        try:
            end = self._ending(how)
            if end is None:
                wrote = False
            elif self._wal:
                end()
            else:
                await_(self._patient(end))
        finally:
            self._release()
        if wrote and how == "commit" and self._count_commit():
            await_(self._checkpoint())

    async def _end_async(self, how: str) -> None:
        wrote = self._turns is not None
        try:
            end = self._ending(how)
            if end is None:
                wrote = False
            elif self._wal:
                end()
            else:
                await self._patient(end)
        finally:
            self._release()
        if wrote and how == "commit" and self._count_commit():
            await self._checkpoint()

    def _count_commit(self) -> bool:
        gate = self._gate
        if gate is None or not self._wal or self._db is None:
            return False
        gate.commits += 1
        return gate.commits % CHECKPOINT_EVERY == 0

    async def _checkpoint(self) -> None:
        # In the thread, once the gate is open again: writers carry on meanwhile.
        db = self._conn
        await self._call(lambda: db.execute("PRAGMA wal_checkpoint(PASSIVE)").close())

    def _release(self) -> None:
        turns, self._turns = self._turns, None
        if turns is not None:
            turns.release()

    # --- where a statement runs ------------------------------------------------------------------

    def _try(self, step: Callable[..., Result], sql: str, parameters: Any, read: bool) -> Result | _Later:
        """Run on the loop if it cannot wait there; else say what is left for the thread."""
        db = self._conn
        begin, self._pending_begin = self._pending_begin, None
        if read or (self._wal and (self._turns is not None or begin == "BEGIN IMMEDIATE")):
            try:
                if not read:
                    return step(db, begin, sql, parameters)
                self._deadline = time.perf_counter() + READ_BUDGET
                db.set_progress_handler(self._over_budget, PROGRESS_STEPS)
                try:
                    return step(db, begin, sql, parameters)
                finally:
                    db.set_progress_handler(None, 0)
            except sqlite3.OperationalError as exc:
                code = _code(exc)
                # Busy (another process writes, or holds the write lock BEGIN IMMEDIATE wants), or a
                # SELECT past its budget: the statement did nothing, so it runs again where it may wait.
                if not (code == SQLITE_BUSY or (read and code == SQLITE_INTERRUPT)):
                    raise
                if begin and db.in_transaction:
                    begin = None  # BEGIN itself went through
        return _Later(begin)

    def run(self, step: Callable[..., Result], sql: str, parameters: Any, read: bool) -> Result:
        """A statement, inside SQLAlchemy's greenlet."""
        done = self._try(step, sql, parameters, read)
        if isinstance(done, _Later):
            return await_(self._patient(step, self._conn, done.begin, sql, parameters))  # type: ignore[no-any-return]
        # AsyncConnection.execute() insists that a statement awaited something (its check that the
        # driver is asynchronous): a step out of the greenlet and straight back.
        await_(_READY)
        return done

    async def run_async(self, step: Callable[..., Result], sql: str, parameters: Any, read: bool) -> Result:
        done = self._try(step, sql, parameters, read)
        if isinstance(done, _Later):
            return await self._patient(step, self._conn, done.begin, sql, parameters)  # type: ignore[no-any-return]
        return done

    def _over_budget(self) -> bool:
        return time.perf_counter() > self._deadline

    async def _patient(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run in the connection's thread, waiting up to the busy timeout for other connections."""
        db = self._conn
        busy = self._busy_ms

        def job() -> Any:
            if busy:
                db.execute(f"PRAGMA busy_timeout={busy}").close()
            try:
                return function(*args)
            finally:
                if busy:
                    db.execute("PRAGMA busy_timeout=0").close()

        return await self._call(job)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._tx.put_nowait((future, (lambda: function(*args)) if args else function))
        return await future


# --- cursors -------------------------------------------------------------------------------------


class _Results:
    """What a statement returned: description, counts, rows so far, and the cursor for the rest."""

    _connection: Connection

    def _reset(self) -> None:
        self._rows: deque[Any] = deque()
        self._open: sqlite3.Cursor | None = None
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def _take(self, result: Result) -> None:
        description, rows, self._open, self.rowcount, self.lastrowid = result
        self.description = description
        self._rows = deque(rows)

    def _discard(self) -> None:
        self._rows.clear()
        if self._open is not None:
            self._open.close()  # no thread job runs now: every one is awaited
            self._open = None


class Cursor(_Results):
    """aiosqlite's async cursor (SQLAlchemy uses it for server-side cursors, i.e. streamed results)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.arraysize = 1
        self._reset()

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        self._discard()
        self._take(await self._connection.run_async(_execute, sql, parameters or (), _is_read(sql)))
        return self

    async def executemany(self, sql: str, rows: Sequence[Any]) -> Cursor:
        self._discard()
        self._take(await self._connection.run_async(_executemany, sql, rows, False))
        return self

    async def _more(self, size: int | None) -> None:
        if self._open is not None:
            rows, done = await self._connection._call(_fetch, self._open, size)
            self._rows.extend(rows)
            if done:
                self._open = None

    async def fetchall(self) -> list[Any]:
        await self._more(None)
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        if len(self._rows) < size:
            await self._more(max(size - len(self._rows), FIRST_BATCH))
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    async def fetchone(self) -> Any:
        rows = await self.fetchmany(1)
        return rows[0] if rows else None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        self._discard()


class DBAPICursor(_Results):
    """The cursor SQLAlchemy's engine uses, called inside its greenlet: a statement that runs on the
    loop returns directly, without a trip out of the greenlet and back."""

    server_side = False

    def __init__(self, adapt_connection: AdaptedConnection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self.arraysize = 1
        self._reset()

    def execute(self, operation: str, parameters: Any = None) -> None:
        try:
            self._discard()
            self._take(self._connection.run(_execute, operation, parameters or (), _is_read(operation)))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> None:
        try:
            self._discard()
            self._take(self._connection.run(_executemany, operation, seq_of_parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def _rest(self) -> None:
        if self._open is not None:
            rows, _ = await_(self._connection._call(_fetch, self._open, None))
            self._rows.extend(rows)
            self._open = None

    async def _async_soft_close(self) -> None:
        # Called by SQLAlchemy's asyncio layer once a buffered result is set up: read the rest now.
        if self._open is not None:
            rows, _ = await self._connection._call(_fetch, self._open, None)
            self._rows.extend(rows)
            self._open = None

    def fetchone(self) -> Any:
        if not self._rows:
            self._rest()
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        if len(self._rows) < size:
            self._rest()
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        self._rest()
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        self._rest()
        while self._rows:
            yield self._rows.popleft()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def nextset(self) -> None:
        return None

    def close(self) -> None:
        self._discard()

    def __enter__(self) -> DBAPICursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AdaptedConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter, with our cursor and a COMMIT that, on the loop,
    returns without leaving the greenlet."""

    __slots__ = ()
    _cursor_cls = DBAPICursor  # type: ignore[assignment]

    def commit(self) -> None:
        try:
            self._connection.end("commit")  # type: ignore[attr-defined]
        except Exception as error:
            self._handle_exception(error)

    def rollback(self) -> None:
        try:
            self._connection.end("rollback")  # type: ignore[attr-defined]
        except Exception as error:
            self._handle_exception(error)


class DBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module of one engine: aiosqlite's, as SQLAlchemy adapts it, over our connection."""

    def __init__(self, gate: WriteGate, pragmas: Sequence[str]) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.gate = gate
        self.pragmas = tuple(pragmas)

    def connect(self, *arg: Any, **kw: Any) -> AdaptedConnection:
        kw.pop("async_creator_fn", None)
        connection = await_(Connection.open(*arg, gate=self.gate, pragmas=self.pragmas, **kw))
        return AdaptedConnection(self, connection)


def dbapi(busy_timeout: float, pragmas: Sequence[str]) -> DBAPI:
    """A DBAPI module for one engine (its own write gate): create_async_engine(url, module=...)."""
    return DBAPI(WriteGate(busy_timeout), pragmas)

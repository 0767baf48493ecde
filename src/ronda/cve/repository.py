"""All SQL about CVE records, CPE rows, imports and state. Matches (tenant data) go through
core.tenancy.scoped() in queries.py; the records themselves are global."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.timeutil import as_utc, utcnow
from ronda.cve.importer import ParsedCve
from ronda.cve.models import CveCpe, CveImport, CveRecord, CveState

CHUNK = 500  # ids per IN (...) list: well inside every database's parameter limit

RECORDS = cast(Table, CveRecord.__table__)
CPES = cast(Table, CveCpe.__table__)


def chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# --- bulk inserts ------------------------------------------------------------------------------------
# Feed imports and re-matches write hundreds of thousands of rows. SQLAlchemy's per-row parameter
# processing costs more than the database's insert, so these rows go to the driver's executemany as
# plain tuples, converted here the way the column types would (JSON text; UTC timestamps as SQLite
# text, as aware datetimes for PostgreSQL).


def db_time(dialect: str, value: datetime | None) -> Any:
    if value is None:
        return None
    value = as_utc(value)
    assert value is not None
    return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else value


def db_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def fast_insert(session: AsyncSession, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
    else:
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    unknown = set(columns) - set(table.columns.keys())
    if unknown:  # the names below come from this module's constants, never from input
        raise ValueError(f"unknown columns {unknown} for {table.name}")
    names = ", ".join(f'"{name}"' for name in columns)
    statement = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608 - constant names only
    await connection.exec_driver_sql(statement, rows)


BULK_CACHE_KIB = 65536


async def bulk_cache(session: AsyncSession) -> None:
    """SQLite: a 64 MiB page cache on this connection for bulk writes (indexes of millions of rows
    otherwise thrash the 2 MiB default) and WAL checkpoints every 64 MiB rather than 4 MiB (fewer
    fsyncs); PostgreSQL sizes its buffers itself."""
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        await connection.exec_driver_sql("PRAGMA wal_autocheckpoint=16384")


async def dialect_of(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


async def write_batch(session: AsyncSession, batch: list[ParsedCve], now: datetime) -> tuple[int, int, int]:
    """Insert new CVEs, replace those whose lastModified is newer, skip the rest: (created, updated, skipped)."""
    latest: dict[str, ParsedCve] = {}
    for cve in batch:  # a record repeated in one batch: the newest wins
        known = latest.get(cve.id)
        if known is None or _newer(cve.last_modified, known.last_modified):
            latest[cve.id] = cve
    ids = list(latest)
    stored: dict[str, datetime | None] = {}
    for part in chunks(ids):
        rows = await session.execute(select(CveRecord.id, CveRecord.last_modified).where(CveRecord.id.in_(part)))
        stored.update({row[0]: row[1] for row in rows})
    new = [cve for cve in latest.values() if cve.id not in stored]
    newer = [cve for cve in latest.values() if cve.id in stored and _newer(cve.last_modified, stored[cve.id])]
    dialect = await dialect_of(session)
    if new:
        record_rows = [tuple(_cell(dialect, name, value) for name, value in cve.record_row(now).items())
                       for cve in new]
        await fast_insert(session, RECORDS, RECORD_COLUMNS, record_rows)
    if newer:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in _record_columns()}
        statement = update(RECORDS).where(RECORDS.c.id == bindparam("v_key")).values(values)
        rows_out = []
        for cve in newer:
            row = {f"v_{k}": v for k, v in cve.record_row(now).items() if k != "id"}
            row["v_key"] = cve.id
            rows_out.append(row)
        await session.execute(statement, rows_out)
        for part in chunks([cve.id for cve in newer]):
            await session.execute(delete(CPES).where(CPES.c.cve_id.in_(part)))
    cpe_rows = [
        (cve.id, row.part, row.vendor, row.product, row.version, row.version_update, row.criteria,
         row.version_start_including, row.version_start_excluding, row.version_end_including,
         row.version_end_excluding)
        for cve in (*new, *newer) for row in cve.cpes
    ]
    await fast_insert(session, CPES, CPE_COLUMNS, cpe_rows)
    return len(new), len(newer), len(batch) - len(new) - len(newer)


RECORD_COLUMNS = ("id", "source_identifier", "vuln_status", "description", "cvss_score", "severity", "cvss_v31_score",
                  "cvss_v31_severity", "cvss_v31_vector", "cvss_v40_score", "cvss_v40_severity", "cvss_v40_vector",
                  "published", "last_modified", "references", "weaknesses", "imported_at")
CPE_COLUMNS = ("cve_id", "part", "vendor", "product", "version", "version_update", "criteria",
               "version_start_including", "version_start_excluding", "version_end_including", "version_end_excluding")
JSON_COLUMNS = frozenset({"references", "weaknesses"})
TIME_COLUMNS = frozenset({"published", "last_modified", "imported_at"})


def _cell(dialect: str, name: str, value: Any) -> Any:
    if name in JSON_COLUMNS:
        return db_json(value)
    if name in TIME_COLUMNS:
        return db_time(dialect, value)
    return value


def _record_columns() -> list[str]:
    return [column.name for column in RECORDS.columns if column.name != "id"]


def _newer(candidate: datetime | None, current: datetime | None) -> bool:
    if candidate is None:
        return False
    if current is None:
        return True
    return candidate > as_utc(current)  # type: ignore[operator]


# --- state and imports ----------------------------------------------------------------------------

DATA_VERSION = "data_version"
MATCHED_VERSION = "matched_version"
WATERMARK = "device_watermark"


async def get_state(session: AsyncSession, key: str) -> str | None:
    value: str | None = await session.scalar(select(CveState.value).where(CveState.key == key))
    return value


async def bump_data_version(session: AsyncSession) -> None:
    """Mark the CVE data as changed: the matcher re-matches every device once it sees this."""
    current = await get_state(session, DATA_VERSION)
    if current is None:
        session.add(CveState(key=DATA_VERSION, value="1"))
        await session.flush()
    else:
        await session.execute(update(CveState).where(CveState.key == DATA_VERSION)
                              .values(value=str(int(current) + 1), updated_at=utcnow()))


async def claim_state(session: AsyncSession, key: str, old: str | None, new: str) -> bool:
    """Compare-and-set: only one process moves a value from `old` to `new`."""
    if old is None:
        if await get_state(session, key) is not None:
            return False
        session.add(CveState(key=key, value=new))
        await session.flush()
        return True
    result = await session.execute(
        update(CveState).where(CveState.key == key, CveState.value == old).values(value=new, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def imported_digests(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(CveImport.sha256))).all())

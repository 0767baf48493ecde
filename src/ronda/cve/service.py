"""CVE rules: importing feed files, and (re)matching devices. Flushes, never commits, except the
runs below that own their transactions (one per file, one per chunk of devices).

- import_file(): one feed file in ONE transaction: a bad record anywhere leaves nothing of that file.
  Parsing runs in a worker thread, batch by batch, so a server's event loop keeps serving.
- rematch(): recompute the matches of some devices (or all), chunk by chunk; new high/critical
  matches queue `cve.matched` events, published after each chunk commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.core import events
from ronda.core.db import transaction
from ronda.core.events import EventBus
from ronda.core.timeutil import utcnow
from ronda.cve import repository
from ronda.cve.importer import ParsedCve, file_digest, read_feed
from ronda.cve.matcher import RangeIndex, match_chunk
from ronda.cve.models import CveImport
from ronda.devices.models import Device

log = logging.getLogger("ronda.cve")

MATCH_EVENT = "cve.matched"
DEVICE_CHUNK = 1000
# At most this many cve.matched events per run: the first import into a large estate would otherwise
# publish one per (device, CVE) pair. The rest are counted and logged; the matches are all stored.
EVENT_LIMIT = 1000
FEED_SUFFIXES = (".json", ".json.gz", ".gz")


@dataclass(slots=True)
class ImportResult:
    file: str
    sha256: str
    records: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0


async def import_file(
    sessions: async_sessionmaker[AsyncSession], path: Path, *, source: str = "cli",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import one NVD 2.0 file (plain or gzip). Raises importer.FeedError; then nothing was written."""
    digest = await asyncio.to_thread(file_digest, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    result = ImportResult(file=path.name, sha256=digest)
    batches: Iterator[list[ParsedCve]] = read_feed(path, path.name)
    now = utcnow()
    # Parse the next batch while this one is written (the driver releases the GIL in the database).
    pending: asyncio.Future[list[ParsedCve] | None] = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    try:
        async with transaction(sessions) as session:
            await repository.bulk_cache(session)
            while True:
                batch = await pending
                if batch is None:
                    break
                pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
                created, updated, skipped = await repository.write_batch(session, batch, now)
                result.records += len(batch)
                result.created += created
                result.updated += updated
                result.skipped += skipped
                if progress is not None:
                    progress(len(batch))
            session.add(CveImport(file_name=path.name[:500], sha256=digest, size=size,
                                  records=result.records, created=result.created, updated=result.updated,
                                  skipped=result.skipped, source=source, imported_at=now))
            if result.created or result.updated:
                await repository.bump_data_version(session)
    finally:
        # The parser thread must be done with the generator before it is closed.
        with contextlib.suppress(BaseException):
            await pending
        close = getattr(batches, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
    return result


def feed_files(directory: Path) -> list[Path]:
    """The feed files of a directory (NVD's names: nvdcve-2.0-2024.json.gz ...), in name order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(FEED_SUFFIXES))


async def new_feed_files(session: AsyncSession, directory: Path) -> tuple[list[Path], int]:
    """(files not imported yet by content, how many were already imported)."""
    known = await repository.imported_digests(session)
    files = feed_files(directory)
    fresh = []
    for path in files:
        if await asyncio.to_thread(file_digest, path) not in known:
            fresh.append(path)
    return fresh, len(files) - len(fresh)


# --- matching --------------------------------------------------------------------------------------


@dataclass(slots=True)
class MatchSummary:
    devices: int = 0
    inserted: int = 0
    deleted: int = 0
    updated: int = 0
    events: int = 0
    events_dropped: int = 0
    tenants: set[str] = field(default_factory=set)


async def rematch(
    sessions: async_sessionmaker[AsyncSession], bus: EventBus | None, device_ids: Sequence[str] | None = None,
    *, chunk: int = DEVICE_CHUNK,
) -> MatchSummary:
    """Recompute the matches of these devices (None: every device), each chunk in its own transaction."""
    summary = MatchSummary()
    index = RangeIndex()
    budget = EVENT_LIMIT
    async for ids in _device_chunks(sessions, device_ids, chunk):
        async with events.transaction(sessions, bus) as session:
            await repository.bulk_cache(session)
            result = await match_chunk(session, index, ids, utcnow(), alert_limit=budget)
            for alert in result.alerts:
                tenant_id = alert.pop("tenant_id")
                events.queue(session, MATCH_EVENT, tenant_id, alert)
                summary.tenants.add(tenant_id)
        sent = len(result.alerts)
        summary.events += sent
        summary.events_dropped += result.alerts_total - sent
        budget -= sent
        summary.devices += len(ids)
        summary.inserted += result.inserted
        summary.deleted += result.deleted
        summary.updated += result.updated
    if summary.events_dropped:
        log.warning("cve re-match: %d more new high/critical matches than events sent (%d)",
                    summary.events_dropped, summary.events)
    return summary


async def _device_chunks(
    sessions: async_sessionmaker[AsyncSession], device_ids: Sequence[str] | None, size: int
) -> AsyncIterator[list[str]]:
    if device_ids is not None:
        ordered = sorted(set(device_ids))
        for start in range(0, len(ordered), size):
            yield ordered[start:start + size]
        return
    after = ""
    while True:
        async with sessions() as session:
            ids = list((await session.scalars(
                select(Device.id).where(Device.id > after).order_by(Device.id).limit(size))).all())
        if not ids:
            return
        yield ids
        after = ids[-1]

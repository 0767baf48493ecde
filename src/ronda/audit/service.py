"""Writing audit records in the caller's transaction, and verifying the chains."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ronda.audit import repository
from ronda.audit.chain import GENESIS, SYSTEM_CHAIN, record_digest
from ronda.audit.events import describe
from ronda.audit.models import AuditHead, AuditLog
from ronda.audit.repository import AuditFilters
from ronda.audit.schemas import AuditLogRead, BrokenRecord, ChainVerification
from ronda.core.db import transaction
from ronda.core.errors import AppError
from ronda.core.ids import new_id
from ronda.core.pagination import ListParams, Page, apply_search, apply_sort, fetch_page
from ronda.core.principal import Principal
from ronda.core.timeutil import utcnow

log = logging.getLogger("ronda.audit")

REDACT = ("password", "secret", "token", "totp", "key", "code")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it and from where; carried from the request into every record."""

    actor_type: str = "system"
    actor_id: str | None = None
    actor_email: str | None = None
    tenant_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, principal: Principal, ip: str | None, user_agent: str | None) -> Actor:
        return cls(
            actor_type="api_key" if principal.kind == "api_key" else principal.kind,
            actor_id=principal.actor_id,
            actor_email=principal.email or None,
            tenant_id=principal.tenant_id,
            ip_address=ip,
            user_agent=user_agent,
        )

    def but(self, **changes: Any) -> Actor:
        values = {f: getattr(self, f) for f in self.__slots__}
        values.update(changes)
        return Actor(**values)


def _clean(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Secrets never reach the log, even if a caller passes them by mistake."""
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if any(word in key.lower() for word in REDACT) and key not in ("api_key_id", "key_prefix"):
            out[key] = "[redacted]"
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


async def _lock_head(session: AsyncSession, chain: str) -> AuditHead:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(AuditHead).values(chain=chain, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["chain"])
    )
    head = (
        await session.execute(
            select(AuditHead)
            .where(AuditHead.chain == chain)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return head


async def record(
    session: AsyncSession,
    actor: Actor,
    event_type: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> AuditLog:
    """Append one record to the tenant's chain, in the same transaction as the change."""
    tenant = tenant_id if tenant_id is not None else actor.tenant_id
    chain = tenant or SYSTEM_CHAIN
    head = await _lock_head(session, chain)
    name, category = describe(event_type)
    entry = AuditLog(
        tenant_id=tenant,
        chain=chain,
        seq=head.seq + 1,
        event_type=event_type,
        event_name=name,
        category=category,
        actor_id=actor.actor_id,
        actor_email=actor.actor_email,
        actor_type=actor.actor_type,
        ip_address=actor.ip_address,
        user_agent=(actor.user_agent or "")[:300] or None,
        resource_type=resource_type,
        resource_id=resource_id,
        details=_clean(metadata),
        created_at=utcnow(),
        prev_hash=head.hash,
    )
    entry.id = new_id("evt")
    entry.hash = record_digest(entry, head.hash)
    head.seq = entry.seq
    head.hash = entry.hash
    session.add(entry)
    await session.flush()
    return entry


@dataclass
class ChainReport:
    chain: str
    valid: bool
    checked: int
    first_broken: dict[str, Any] | None


async def verify_chain(session: AsyncSession, chain: str, batch: int = 1000) -> ChainReport:
    """Walk one chain in order; name the first record whose hash, link or position is wrong."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.chain == chain, AuditLog.seq > last_seq)
                .order_by(AuditLog.seq)
                .limit(batch)
            )
        ).all()
        for entry in rows:
            problem = None
            if entry.seq != expected_seq:
                problem = f"sequence gap: expected {expected_seq}, found {entry.seq} (records deleted)"
            elif entry.prev_hash != prev_hash:
                problem = "link broken: prev_hash does not match the previous record"
            elif record_digest(entry, entry.prev_hash) != entry.hash:
                problem = "content changed: the record's hash does not match its fields"
            if problem:
                broken = {"id": entry.id, "seq": entry.seq, "event_type": entry.event_type, "reason": problem}
                return ChainReport(chain, False, checked, broken)
            prev_hash, expected_seq, last_seq = entry.hash, entry.seq + 1, entry.seq
            checked += 1
        if len(rows) < batch:
            break
    head = await session.get(AuditHead, chain)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        broken = {
            "id": None,
            "seq": head.seq,
            "event_type": None,
            "reason": f"chain truncated: head says {head.seq} records, found {expected_seq - 1}",
        }
        return ChainReport(chain, False, checked, broken)
    return ChainReport(chain, True, checked, None)


async def all_chains(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(AuditHead.chain).order_by(AuditHead.chain))).all())


# --- reading the log (GET /audit-logs) ---------------------------------------------------------

DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UNENCODED_PLUS = re.compile(r"(T[\d:.]+) (\d{2}:?\d{2})$")


def _bad_date(field: str, reason: str) -> AppError:
    return AppError(400, f"Invalid request: {field}: {reason}",
                    details=[{"field": field, "location": "query", "reason": reason}])


def parse_bound(value: str, field: str) -> tuple[datetime, bool]:
    """A date (YYYY-MM-DD, whole day) or an ISO 8601 datetime (naive means UTC) -> (moment, is_date)."""
    text = value.strip()
    try:
        if DATE_ONLY.match(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True
        # An unencoded '+' in a query string arrives as a space: "…T10:00:00 02:00".
        moment = datetime.fromisoformat(UNENCODED_PLUS.sub(r"\1+\2", text))
    except ValueError:
        raise _bad_date(field, "must be a date (YYYY-MM-DD) or an ISO 8601 date and time") from None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)), False


def with_dates(filters: AuditFilters, start_date: str | None, end_date: str | None) -> AuditFilters:
    """Add the query's date bounds; an end date is the whole of that day. An end before the start is a 400."""
    start = parse_bound(start_date, "start_date")[0] if start_date else None
    end, end_inclusive = None, True
    if end_date:
        end, is_date = parse_bound(end_date, "end_date")
        if is_date:  # everything before the next midnight
            try:
                end, end_inclusive = end + timedelta(days=1), False
            except OverflowError:
                end = None
    if start is not None and end is not None and (end < start or (end == start and not end_inclusive)):
        raise _bad_date("end_date", "must not be before start_date")
    return replace(filters, start=start, end=end, end_inclusive=end_inclusive)


def log_statement(principal: Principal, params: ListParams, filters: AuditFilters) -> Select[Any]:
    statement = repository.list_statement(principal, filters)
    statement = apply_search(statement, params.search, repository.SEARCH_COLUMNS)
    # Ties keep chain order: ascending time -> ascending seq, otherwise newest first.
    tie = (AuditLog.seq.asc(),) if params.sort == "created_at" else repository.NEWEST_FIRST
    return apply_sort(statement, params.sort, repository.SORT_FIELDS, tie)


async def list_logs(session: AsyncSession, statement: Select[Any], params: ListParams) -> Page[AuditLogRead]:
    rows, total = await fetch_page(session, statement, params)
    return Page[AuditLogRead](data=[AuditLogRead.model_validate(row) for row in rows], meta=params.meta(total))


async def get_log(session: AsyncSession, principal: Principal, log_id: str) -> AuditLogRead:
    entry = await repository.get(session, principal, log_id)
    if entry is None:
        raise AppError(404, "Audit log entry not found")
    return AuditLogRead.model_validate(entry)


CSV_COLUMNS: tuple[tuple[str, Callable[[AuditLog], Any]], ...] = (
    ("id", lambda e: e.id),
    ("created_at", lambda e: e.created_at),
    ("event_name", lambda e: e.event_name),
    ("event_type", lambda e: e.event_type),
    ("category", lambda e: e.category),
    ("actor_id", lambda e: e.actor_id),
    ("actor_email", lambda e: e.actor_email),
    ("actor_type", lambda e: e.actor_type),
    ("ip_address", lambda e: e.ip_address),
    ("user_agent", lambda e: e.user_agent),
    ("resource_type", lambda e: e.resource_type),
    ("resource_id", lambda e: e.resource_id),
    ("metadata", lambda e: orjson.dumps(e.details or {}, option=orjson.OPT_SORT_KEYS).decode()),
)


async def verify_tenant(session: AsyncSession, principal: Principal) -> ChainVerification:
    """Verify the caller's tenant chain (its chain is named after the tenant)."""
    report = await verify_chain(session, principal.tenant_id)
    broken = BrokenRecord(**report.first_broken) if report.first_broken else None
    return ChainVerification(valid=report.valid, checked=report.checked, first_broken=broken,
                             chain=report.chain, verified_at=utcnow())


async def record_verification(
    sessions: async_sessionmaker[AsyncSession], actor: Actor, result: ChainVerification
) -> None:
    """Note the check in the chain itself, in its own short transaction (the request only reads)."""
    metadata = {"valid": result.valid, "checked": result.checked,
                "first_broken_id": result.first_broken.id if result.first_broken else None,
                "first_broken_seq": result.first_broken.seq if result.first_broken else None}
    try:
        async with transaction(sessions) as session:
            await record(session, actor, "audit.verified", resource_type="audit_chain", resource_id=result.chain,
                         metadata=metadata)
    except Exception:  # the verification result stands even if the note cannot be written
        log.warning("could not record the audit verification of %s", result.chain, exc_info=True)

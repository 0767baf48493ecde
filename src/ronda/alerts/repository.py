"""All SQL for alerts; every statement is scoped to a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import DateTime, Integer, Select, Text, bindparam, cast, func, select, text, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.alerts.models import ACTIVE_WHERE, Alert
from ronda.core.pagination import apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped

SORT_FIELDS: dict[str, Any] = {
    "created_at": Alert.created_at,
    "last_seen_at": Alert.last_seen_at,
    "severity": Alert.severity,
    "status": Alert.status,
    "title": Alert.title,
    "occurrence_count": Alert.occurrence_count,
}
DEFAULT_ORDER = (Alert.created_at.desc(), Alert.id.desc())
SEARCH_COLUMNS = (Alert.title, Alert.description, Alert.device_ip)
# AlertRead's fields in its order, each with what the list reads for it: plain rows (no ORM objects
# for a page that is only rendered). Times come as the driver gives them (aware UTC on PostgreSQL,
# naive UTC on SQLite: orjson writes both with a Z); metadata as its stored JSON text, passed through.
_TIME = DateTime(timezone=True)
READ_FIELDS: tuple[tuple[str, Any], ...] = (
    ("id", Alert.id), ("tenant_id", Alert.tenant_id), ("rule", Alert.rule), ("title", Alert.title),
    ("description", Alert.description), ("severity", Alert.severity), ("status", Alert.status),
    ("source", Alert.source), ("device_id", Alert.device_id), ("device_ip", Alert.device_ip),
    ("site_id", Alert.site_id), ("metadata", cast(Alert.details, Text)),
    ("occurrence_count", Alert.occurrence_count), ("first_seen_at", type_coerce(Alert.first_seen_at, _TIME)),
    ("last_seen_at", type_coerce(Alert.last_seen_at, _TIME)),
    ("created_at", type_coerce(Alert.created_at, _TIME)), ("updated_at", type_coerce(Alert.updated_at, _TIME)),
    ("acknowledged_at", type_coerce(Alert.acknowledged_at, _TIME)), ("acknowledged_by", Alert.acknowledged_by),
    ("resolved_at", type_coerce(Alert.resolved_at, _TIME)), ("resolved_by", Alert.resolved_by),
    ("resolution_note", Alert.resolution_note),
)
READ_NAMES = tuple(name for name, _ in READ_FIELDS)
METADATA = READ_NAMES.index("metadata")
PAGE_OFFSET = bindparam("page_offset", type_=Integer)
PAGE_LIMIT = bindparam("page_limit", type_=Integer)


@dataclass(frozen=True, slots=True)
class AlertFilters:
    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    source: str | None = None
    site_id: str | None = None
    device_id: str | None = None
    rule: str | None = None
    since: datetime | None = None


def list_statement(principal: Principal | str, filters: AlertFilters) -> Select[Any]:
    statement = scoped(select(Alert), Alert, principal)
    if filters.severity:
        statement = statement.where(Alert.severity.in_(filters.severity))
    if filters.status:
        statement = statement.where(Alert.status.in_(filters.status))
    if filters.source is not None:
        statement = statement.where(Alert.source == filters.source)
    if filters.site_id is not None:
        statement = statement.where(Alert.site_id == filters.site_id)
    if filters.device_id is not None:
        statement = statement.where(Alert.device_id == filters.device_id)
    if filters.rule is not None:
        statement = statement.where(Alert.rule == filters.rule)
    if filters.since is not None:
        statement = statement.where(Alert.created_at >= filters.since)
    return statement


def sorted_statement(principal: Principal | str, filters: AlertFilters, search: str | None, sort: str | None
                     ) -> Select[Any]:
    """The caller's alerts, filtered, searched and sorted (not paged), as Alert objects."""
    statement = apply_search(list_statement(principal, filters), search, SEARCH_COLUMNS)
    return apply_sort(statement, sort, SORT_FIELDS, DEFAULT_ORDER)


def _page_statements(tenant_id: str, filters: AlertFilters, search: str | None, sort: str | None
                     ) -> tuple[Select[Any], Select[Any]]:
    listed = sorted_statement(tenant_id, filters, search, sort)
    # A plain count of the filtered rows (not of a subquery selecting every column).
    counted = listed.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    # Each page row carries the total too (one statement, not two): uncorrelated, so worked out once.
    total = counted.correlate(None).scalar_subquery().label("list_total")
    page = listed.with_only_columns(*(column for _, column in READ_FIELDS), total)
    return counted, page.offset(PAGE_OFFSET).limit(PAGE_LIMIT)


_kept_page_statements = lru_cache(maxsize=1024)(_page_statements)


def page_statements(tenant_id: str, filters: AlertFilters, search: str | None, sort: str | None
                    ) -> tuple[Select[Any], Select[Any]]:
    """(count, page) of the list; the page binds page_offset and page_limit, and its rows end with the
    count's result. Built once per tenant,
    filters and sort (building costs more than running them, and the same statement object lets
    SQLAlchemy reuse its cache key); a search or a `since` varies too freely to keep."""
    if filters.since is None and not search:
        return _kept_page_statements(tenant_id, filters, None, sort)
    return _page_statements(tenant_id, filters, search, sort)


async def page_rows(session: AsyncSession, principal: Principal, filters: AlertFilters, search: str | None,
                    sort: str | None, skip: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the caller's alerts as AlertRead-shaped dicts (metadata as a JSON fragment), and
    how many alerts the list holds (counted apart only for an empty page)."""
    counted, page = page_statements(principal.tenant_id, filters, search, sort)
    connection = await session.connection()  # Core: no ORM step for plain columns
    rows = (await connection.execute(page, {"page_offset": skip, "page_limit": limit})).all()
    if not rows:
        return [], int((await connection.execute(counted)).scalar() or 0)
    return [_read(row) for row in rows], int(rows[0][-1])


def _read(row: Any) -> dict[str, Any]:
    item = dict(zip(READ_NAMES, row[:-1], strict=True))
    stored = row[METADATA]
    # The stored JSON text goes out as is; JSON null (never written by the rules) reads as {}.
    item["metadata"] = orjson.Fragment(stored if stored and stored != "null" else "{}")
    return item


async def get(session: AsyncSession, principal: Principal | str, alert_id: str, *, for_update: bool = False
              ) -> Alert | None:
    statement = scoped(select(Alert).where(Alert.id == alert_id), Alert, principal)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def upsert_active(session: AsyncSession, values: dict[str, Any], now: datetime) -> tuple[str, bool]:
    """Insert the alert, or (an active one of the same tenant, rule and subject exists) count one more
    occurrence of it. Atomic in the database, so concurrent triggers never make two. Returns the
    alert's id and whether it was created."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    base = insert(Alert).values(**values)
    statement = base.on_conflict_do_update(
        index_elements=[Alert.tenant_id, Alert.rule, Alert.subject],
        index_where=text(ACTIVE_WHERE),
        set_={"occurrence_count": Alert.occurrence_count + 1, "last_seen_at": now, "updated_at": now},
    ).returning(Alert.id, Alert.occurrence_count)
    row = (await session.execute(statement)).one()
    return str(row[0]), int(row[1]) == 1


async def active_for(session: AsyncSession, tenant_id: str, rule: str, subject: str) -> Alert | None:
    statement = scoped(select(Alert), Alert, tenant_id).where(
        Alert.rule == rule, Alert.subject == subject, Alert.status != "resolved"
    )
    return (await session.scalars(statement)).one_or_none()

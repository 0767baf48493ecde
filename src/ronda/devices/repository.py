"""All SQL about devices, their data and ports. Every query goes through core.tenancy.scoped()."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, get_args

from sqlalchemy import (
    ColumnElement,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import JSON as JSON_PG
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ronda.agents.models import Agent
from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.devices import posture
from ronda.devices.models import Device, DeviceCount, DeviceData, DeviceEvaluation, DevicePort, data_last_seen
from ronda.devices.schemas import (
    CheckResult,
    ComplianceStatus,
    normalize_hostname,
    normalize_mac,
    normalize_serial,
)

MATCH_CANDIDATES = 20


async def find_match(
    session: AsyncSession,
    tenant_id: str,
    *,
    serial_number: str | None,
    mac: str | Iterable[str] | None,
    hostname: str | None,
    site_id: str | None,
    exclude_id: str | None = None,
) -> Device | None:
    """The existing device of the tenant these facts describe, by the merge order, or None.

    Order: serial number (trimmed, case-insensitive; junk firmware serials ignored), then MAC
    (any spelling; one or several, e.g. every interface an agent reports), then hostname
    (case-insensitive) within the same site (no site matches devices without a site). A device
    whose own serial differs from a given valid serial is a different machine and never matches
    by MAC or hostname. One indexed query when the serial or MAC is known; the hostname query
    runs only when they found nothing. `exclude_id` leaves one device out (for edits).
    """
    serial = normalize_serial(serial_number)
    raw_macs = [mac] if isinstance(mac, str) else list(mac or ())
    macs = sorted({m for m in (normalize_mac(v) for v in raw_macs) if m})
    host = normalize_hostname(hostname)

    def conflicts(device: Device) -> bool:
        other = normalize_serial(device.serial_number)
        return serial is not None and other is not None and other != serial

    def candidates(*clauses: Any) -> Select[Any]:
        statement = scoped(select(Device).where(or_(*clauses)), Device, tenant_id)
        if exclude_id is not None:
            statement = statement.where(Device.id != exclude_id)
        # Strongest evidence first, so the candidate limit can never push a serial match out.
        rank = case(*[(clause, position) for position, clause in enumerate(clauses)], else_=len(clauses))
        return statement.order_by(rank, Device.created_at, Device.id).limit(MATCH_CANDIDATES)

    strong: list[Any] = []
    if serial:
        # Stored serials are normalised; the raw spelling also finds a row written before that rule.
        strong.append(Device.serial_number.in_(sorted({serial, (serial_number or "").strip()})))
    if macs:
        strong.append(Device.mac.in_(macs))
    if strong:
        found: list[Device] = list((await session.scalars(candidates(*strong))).all())
        if serial:
            for device in found:
                if normalize_serial(device.serial_number) == serial:
                    return device
        for device in found:
            if device.mac in macs and not conflicts(device):
                return device
    if host:
        site_clause = Device.site_id.is_(None) if site_id is None else Device.site_id == site_id
        named: list[Device] = list(
            (await session.scalars(candidates(and_(site_clause, func.lower(Device.hostname) == host.lower())))).all()
        )
        for device in named:
            if not conflicts(device):
                return device
    return None


# --- reads -------------------------------------------------------------------------------------

SEARCH_COLUMNS = (Device.device_name, Device.hostname, Device.serial_number, Device.ip, Device.mac, Device.vendor)
NOT_NULL_SORTS: dict[str, Any] = {"last_seen": Device.last_seen, "compliance_status": Device.compliance_status}


# --- the list's JSON, rendered by the database -------------------------------------------------
#
# A list page is the devices' API view (schemas.DeviceRead, as service.to_read() builds it) rendered
# to JSON by the database, one object per row: the server then only joins 100 strings, where
# building and encoding 100 Python objects of 25 fields cost most of a request. The rules are the
# same as to_read()'s (tests/devices/test_inventory_list_render.py compares the two for odd devices on both
# databases): is_online and the effective compliance status come from the SQL forms of their rules
# below, timestamps read as iso() writes them, a score as a float, the JSON columns as stored.

ONLINE_SINCE = bindparam("online_since", type_=Device.last_seen.type)
STALE_BEFORE = bindparam("stale_before", type_=Device.last_report_at.type)
STATUSES: tuple[str, ...] = get_args(ComplianceStatus)
RESULTS: tuple[str, ...] = get_args(CheckResult)


def _sql(text: str) -> ColumnElement[str]:
    """A constant of this module as an SQL string literal (part of the statement, not a parameter)."""
    return literal_column("'" + text.replace("'", "''") + "'", String())


def online_sql(since: Any) -> ColumnElement[bool]:
    """service.effective_online() in SQL: a managed device is online while last seen at or after
    `since` (now - offline_after); any other device carries the state its last scan stored."""
    return or_(
        and_(Device.managed.is_(True), Device.last_seen >= since),
        and_(Device.managed.is_(False), Device.is_online.is_(True)),
    )


def status_sql(stale_before: Any) -> ColumnElement[str]:
    """posture.effective_status() in SQL, read as service.compliance_of() shows it."""
    return case(
        (Device.last_report_at < stale_before, _sql("unknown")),
        (Device.compliance_status.in_([_sql(status) for status in STATUSES]), Device.compliance_status),
        else_=_sql("unknown"),
    )


def _iso_time(dialect: str, column: Any) -> ColumnElement[str]:
    """timeutil.iso(): 2026-01-04T10:30:00.123456Z, without the fraction when it is zero; NULL stays NULL."""
    if dialect == "postgresql":
        text = func.to_char(func.timezone(_sql("UTC"), column), _sql('YYYY-MM-DD"T"HH24:MI:SS.US'), type_=String)
    else:  # SQLite keeps UTC as the text SQLAlchemy writes: "2026-01-04 10:30:00.123456"
        text = func.replace(type_coerce(column, String()), _sql(" "), _sql("T"), type_=String)
    return func.replace(text, _sql(".000000"), _sql(""), type_=String) + _sql("Z")


# SQLite embeds a value as JSON (not as a string) only while it carries the JSON subtype, which not
# every SQLite version passes through CASE or a subquery: every JSON value is wrapped in json() last.


def _json_bool(dialect: str, condition: ColumnElement[bool]) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return case((condition, true()), else_=false())
    return func.json(case((condition, _sql("true")), else_=_sql("false")))


def _json_array(dialect: str, column: Any) -> ColumnElement[Any]:
    """The stored JSON array as it is; [] for NULL or anything that is not an array."""
    if dialect == "postgresql":
        return case((func.json_typeof(column) == _sql("array"), column), else_=cast(_sql("[]"), JSON_PG))
    return func.json(case((func.json_type(column) == _sql("array"), column), else_=_sql("[]")))


def _json_object(dialect: str, column: Any) -> ColumnElement[Any]:
    """The stored JSON object as it is; {} for NULL or anything that is not an object."""
    if dialect == "postgresql":
        return case((func.json_typeof(column) == _sql("object"), column), else_=cast(_sql("{}"), JSON_PG))
    return func.json(case((func.json_type(column) == _sql("object"), column), else_=_sql("{}")))


def _json_score(dialect: str, column: Any) -> ColumnElement[Any]:
    """A float, as Python writes it: 100.0, not 100."""
    if dialect == "postgresql":
        return case((column == func.trunc(column), func.to_json(cast(column, Numeric(20, 1)))),
                    else_=func.to_json(column))
    stored: ColumnElement[Any] = column  # SQLite writes REAL as 100.0 already
    return stored


def device_json(dialect: str) -> ColumnElement[str]:
    """One device as the text of its DeviceRead JSON object, device_data left out (the caller adds it)
    and compliance.checks as stored (the caller drops results other than pass, fail and unknown: see
    service.list_devices; filtering them here would cost more than the rest of the row).
    Binds ONLINE_SINCE and STALE_BEFORE."""
    build = func.json_build_object if dialect == "postgresql" else func.json_object
    compliance = build(
        _sql("status"), status_sql(STALE_BEFORE),
        _sql("score"), _json_score(dialect, Device.compliance_score),
        _sql("checks"), _json_object(dialect, Device.compliance_checks),
        _sql("evaluated_at"), _iso_time(dialect, Device.evaluated_at),
    )
    fields: list[tuple[str, Any]] = [
        ("id", Device.id), ("tenant_id", Device.tenant_id), ("device_name", Device.device_name),
        ("hostname", Device.hostname), ("serial_number", Device.serial_number),
        ("device_type", func.coalesce(func.nullif(Device.device_type, _sql("")), _sql("unknown"))),
        ("os_type", Device.os_type), ("os_version", Device.os_version), ("os_guess", Device.os_guess),
        ("ip", Device.ip), ("mac", Device.mac), ("vendor", Device.vendor),
        ("is_online", _json_bool(dialect, online_sql(ONLINE_SINCE))),
        ("first_seen", _iso_time(dialect, Device.first_seen)), ("last_seen", _iso_time(dialect, Device.last_seen)),
        ("site_id", Device.site_id), ("user_id", Device.user_id), ("tags", _json_array(dialect, Device.tags)),
        ("note", Device.note), ("open_ports", _json_array(dialect, Device.open_ports)),
        ("sources", _json_array(dialect, Device.sources)),
        ("managed", _json_bool(dialect, Device.managed.is_(True))), ("compliance", compliance),
    ]
    return cast(build(*[part for name, value in fields for part in (_sql(name), value)]), Text)


@dataclass(frozen=True, slots=True)
class DeviceFilters:
    site_id: str | None = None
    is_online: ColumnElement[bool] | None = None  # the caller's SQL for "online now" (see service.online_clause)
    vendor: str | None = None
    os: str | None = None
    device_type: str | None = None
    compliance_status: str | None = None
    stale_before: datetime | None = None  # reports older than this read `unknown` (tenant policy)
    managed: bool | None = None
    user_id: str | None = None
    tag: str | None = None

    def narrows(self) -> bool:
        """True when _filtered() adds a condition (stale_before alone adds none: it qualifies compliance_status)."""
        return (
            self.site_id is not None or self.is_online is not None or self.compliance_status is not None
            or self.managed is not None or self.user_id is not None
            or bool(self.vendor or self.os or self.device_type or self.tag)
        )


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped.lower()}%", escape="\\")


def has_tag(dialect: str, tag: str) -> ColumnElement[bool]:
    """The device's tags (a JSON array) hold exactly this tag."""
    if dialect == "postgresql":
        return cast(Device.tags, JSONB).contains([tag])
    elements = func.json_each(Device.tags).table_valued("value")
    return select(literal(1)).select_from(elements).where(elements.c.value == tag).exists()


def sort_fields() -> dict[str, Any]:
    return {
        # A generated column (ronda.devices.models.ip_sort_key) with its own index: IPv4 numerically, then IPv6.
        "ip": Device.ip_key,
        "hostname": Device.hostname,
        "last_seen": Device.last_seen,
        "vendor": Device.vendor,
        "device_name": Device.device_name,
        "compliance_status": Device.compliance_status,
    }


def visible(statement: Select[Any], principal: Principal) -> Select[Any]:
    """The caller's tenant, and for the `user` role only the devices it owns."""
    statement = scoped(statement, Device, principal)
    if principal.role == "user":
        statement = statement.where(Device.user_id == principal.user_id)
    return statement


def _filtered(
    statement: Select[Any], principal: Principal, params: ListParams, filters: DeviceFilters, dialect: str
) -> Select[Any]:
    """The devices the caller may see, filtered and searched (no order, no paging)."""
    statement = visible(statement, principal)
    if filters.site_id is not None:
        statement = statement.where(Device.site_id == filters.site_id)
    if filters.is_online is not None:
        statement = statement.where(filters.is_online)
    if filters.vendor:
        statement = statement.where(_contains(Device.vendor, filters.vendor))
    if filters.os:
        os_text = filters.os
        statement = statement.where(or_(_contains(Device.os_type, os_text), _contains(Device.os_version, os_text)))
    if filters.device_type:
        statement = statement.where(Device.device_type == filters.device_type.lower())
    if filters.compliance_status is not None:
        statement = statement.where(posture.status_clause(filters.compliance_status, filters.stale_before))
    if filters.managed is not None:
        statement = statement.where(Device.managed.is_(filters.managed))
    if filters.user_id is not None:
        statement = statement.where(Device.user_id == filters.user_id)
    if filters.tag:
        statement = statement.where(has_tag(dialect, filters.tag))
    return apply_search(statement, params.search, SEARCH_COLUMNS)


def list_statement(
    principal: Principal, params: ListParams, filters: DeviceFilters, dialect: str, *, default_sort: str = "-last_seen"
) -> Select[Any]:
    """The devices the caller may see, filtered, searched and sorted (not yet paged), as Device objects."""
    return _sort(_filtered(select(Device), principal, params, filters, dialect), params.sort or default_sort)


def _sort(statement: Select[Any], sort: str) -> Select[Any]:
    """Sort; a column that is never NULL skips NULLS LAST so PostgreSQL can walk its index
    (tenant_id, last_seen, id, ...) instead of sorting the whole tenant for every page."""
    column = NOT_NULL_SORTS.get(sort.lstrip("-"))
    if column is None:
        return apply_sort(statement, sort, sort_fields(), (Device.id,))
    if sort.startswith("-"):
        return statement.order_by(column.desc(), Device.id.desc())
    return statement.order_by(column.asc(), Device.id.asc())


def whole_tenant(principal: Principal, params: ListParams, filters: DeviceFilters) -> bool:
    """The list is every device of the caller's tenant: no filter, no search, not a `user` (who sees its own)."""
    return principal.role != "user" and not params.search and not filters.narrows()


@lru_cache(maxsize=4096)
def _kept_count_statement(tenant_id: str) -> Select[Any]:
    return scoped(select(DeviceCount.total), DeviceCount, tenant_id)


async def count(
    session: AsyncSession, principal: Principal, params: ListParams, filters: DeviceFilters, dialect: str
) -> int:
    """The exact number of devices the list holds. The whole tenant's list reads the count the
    database keeps (device_counts, one row by key); a narrowed list counts its rows."""
    connection = await session.connection()
    if whole_tenant(principal, params, filters):
        kept = (await connection.execute(_kept_count_statement(principal.tenant_id))).scalar()
        if kept is not None:
            return int(kept)
    statement = _filtered(select(func.count()).select_from(Device), principal, params, filters, dialect)
    return int((await connection.execute(statement)).scalar() or 0)


PAGE = {"page_offset": bindparam("page_offset", type_=Integer), "page_limit": bindparam("page_limit", type_=Integer)}


def _page_of(ids: Select[Any], tenant_id: str, sort: str, dialect: str) -> Select[Any]:
    """(id, device JSON, stored checks) of one page of `ids`, in `sort` order. The page's ids are found
    first, in the sort index alone, then only those rows are read: a deep page skips index entries."""
    page = _sort(ids, sort).offset(PAGE["page_offset"]).limit(PAGE["page_limit"]).subquery("page")
    rows: Select[Any] = select(  # type: ignore[assignment]
        Device.id, device_json(dialect), cast(Device.compliance_checks, Text)
    ).join(page, page.c.id == Device.id)
    return _sort(scoped(rows, Device, tenant_id), sort)


def _total_column(counted: Select[Any]) -> Any:
    """The list's size as a column of each page row: one statement instead of two. Uncorrelated
    (never tied to the page's own devices row), so the database works it out once."""
    return counted.correlate(None).scalar_subquery().label("list_total")


@lru_cache(maxsize=4096)
def _tenant_page_statement(tenant_id: str, sort: str, dialect: str) -> Select[Any]:
    """The whole tenant's page in one order, with the kept count: built once (building costs more than
    running it), and the same statement object each time lets SQLAlchemy reuse its result metadata."""
    page = _page_of(scoped(select(Device.id), Device, tenant_id), tenant_id, sort, dialect)
    return page.add_columns(_total_column(_kept_count_statement(tenant_id)))


async def page_json(
    session: AsyncSession, principal: Principal, params: ListParams, filters: DeviceFilters, dialect: str, *,
    online_since: datetime, stale_before: datetime, default_sort: str = "-last_seen",
) -> tuple[list[tuple[str, str, str | None]], int | None]:
    """One page of the list as (device id, device JSON object text, stored checks text), in order
    (see device_json), and the list's size as count() gives it; None when the page is empty (past the
    end, or no devices) or the tenant has no kept count yet: count() then."""
    sort = params.sort or default_sort
    if whole_tenant(principal, params, filters):
        statement = _tenant_page_statement(principal.tenant_id, sort, dialect)
    else:
        ids = _filtered(select(Device.id), principal, params, filters, dialect)
        counted = _filtered(select(func.count()).select_from(Device), principal, params, filters, dialect)
        statement = _page_of(ids, principal.tenant_id, sort, dialect).add_columns(_total_column(counted))
    connection = await session.connection()  # Core: no ORM step for plain columns
    result = await connection.execute(statement, {
        "page_offset": params.skip, "page_limit": params.limit, "online_since": online_since,
        "stale_before": stale_before,
    })
    rows = result.all()
    total = rows[0][3] if rows else None
    return [(device_id, text, checks) for device_id, text, checks, _ in rows], \
        None if total is None else int(total)


async def get(
    session: AsyncSession, principal: Principal, device_id: str, *, for_update: bool = False
) -> Device | None:
    """One device the caller may see; another tenant's (or, for a `user`, another owner's) finds nothing."""
    statement = visible(select(Device).where(Device.id == device_id), principal)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    device: Device | None = (await session.execute(statement)).scalar_one_or_none()
    return device


def _latest(columns: Sequence[Any], tenant_id: str, device_ids: Sequence[str]) -> Select[Any]:
    """The newest DeviceData row of each type of the listed devices. The versions are ranked by device
    (its index) alone and the tenant's scope applies to the rows found: with both in one WHERE,
    SQLite (no statistics) prefers the tenant_id index and reads every data row of the tenant."""
    rank = (
        func.row_number()
        .over(partition_by=(DeviceData.device_id, DeviceData.data_type),
              order_by=(DeviceData.collected_at.desc(), DeviceData.id.desc()))
        .label("rank")
    )
    ranked = select(DeviceData.id.label("id"), rank).where(DeviceData.device_id.in_(list(device_ids))).subquery()
    statement = select(*columns).join(ranked, ranked.c.id == DeviceData.id).where(ranked.c.rank == 1)
    return scoped(statement, DeviceData, tenant_id).order_by(DeviceData.device_id, DeviceData.data_type)


async def latest_data(session: AsyncSession, tenant_id: str, device_ids: Sequence[str]) -> dict[str, list[DeviceData]]:
    """The newest DeviceData row of each type for every listed device, in one query."""
    if not device_ids:
        return {}
    out: dict[str, list[DeviceData]] = {device_id: [] for device_id in device_ids}
    for row in (await session.scalars(_latest([DeviceData], tenant_id, device_ids))).all():
        out[row.device_id].append(row)
    return out


async def latest_data_views(
    session: AsyncSession, tenant_id: str, device_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """latest_data() as the API's device_data entries (id, data_type, data, collected_at, last_seen_at), without
    ORM objects: for lists."""
    if not device_ids:
        return {}
    columns = (DeviceData.device_id, DeviceData.id, DeviceData.data_type, DeviceData.data, DeviceData.collected_at,
               DeviceData.last_seen_at, Device.live_data, Device.last_report_at)
    # With the device's live_data and last_report_at: what confirms its current versions (data_last_seen).
    statement = scoped(_latest(columns, tenant_id, device_ids).join(Device, Device.id == DeviceData.device_id),
                       Device, tenant_id)
    connection = await session.connection()
    rows = (await connection.execute(statement)).all()
    out: dict[str, list[dict[str, Any]]] = {device_id: [] for device_id in device_ids}
    for device_id, data_id, data_type, data, collected_at, last_seen_at, live_data, last_report_at in rows:
        out[device_id].append({"id": data_id, "data_type": data_type, "data": data, "collected_at": collected_at,
                               "last_seen_at": data_last_seen(data_id, data_type, last_seen_at, live_data,
                                                              last_report_at)})
    return out


def data_statement(tenant_id: str, device_id: str, data_type: str, at: datetime | None) -> Select[Any]:
    """The versions of one kind of data of one device, newest first; with `at`, those current by then."""
    statement = scoped(select(DeviceData), DeviceData, tenant_id).where(
        DeviceData.device_id == device_id, DeviceData.data_type == data_type
    )
    if at is not None:
        statement = statement.where(DeviceData.collected_at <= at)
    return statement.order_by(DeviceData.collected_at.desc(), DeviceData.id.desc())


async def data_version(
    session: AsyncSession, tenant_id: str, device_id: str, data_type: str, at: datetime | None
) -> DeviceData | None:
    row: DeviceData | None = (
        await session.scalars(data_statement(tenant_id, device_id, data_type, at).limit(1))
    ).first()
    return row


async def ports(session: AsyncSession, tenant_id: str, device_id: str) -> list[DevicePort]:
    statement = scoped(select(DevicePort), DevicePort, tenant_id).where(DevicePort.device_id == device_id)
    return list((await session.scalars(statement.order_by(DevicePort.port, DevicePort.protocol))).all())


# --- writes ------------------------------------------------------------------------------------


async def delete(session: AsyncSession, principal: Principal, device_id: str) -> dict[str, int]:
    """Remove a device and everything hanging off it; returns how many rows of each kind went."""
    removed: dict[str, int] = {}
    for name, model in (("data", DeviceData), ("ports", DevicePort), ("evaluations", DeviceEvaluation),
                        ("agents", Agent)):
        result = await session.execute(scoped(sa_delete(model), model, principal).where(model.device_id == device_id))
        removed[name] = int(getattr(result, "rowcount", 0) or 0)
    await session.execute(scoped(sa_delete(Device), Device, principal).where(Device.id == device_id))
    return removed


async def prune_history(
    session: AsyncSession, cutoff: datetime, tenant_id: str | None = None, device_id: str | None = None
) -> int:
    """Delete superseded data versions that stopped being current before `cutoff`
    (now - settings.device_history_days); returns how many went.

    A version is current from its collected_at until the next version's collected_at; the
    latest version of each (device, type) is always kept, so "what was true on day D" stays
    answerable for every D after the cutoff. With `device_id` it touches one device only
    (cheap enough to run whenever a report writes a new version).
    """
    newer = aliased(DeviceData)
    superseded = (
        select(newer.id)
        .where(newer.device_id == DeviceData.device_id, newer.data_type == DeviceData.data_type,
               newer.collected_at > DeviceData.collected_at, newer.collected_at < cutoff)
        .exists()
    )
    statement = sa_delete(DeviceData).where(superseded)
    if tenant_id is not None:
        statement = scoped(statement, DeviceData, tenant_id)
    if device_id is not None:
        statement = statement.where(DeviceData.device_id == device_id)
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)

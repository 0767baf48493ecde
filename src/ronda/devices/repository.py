"""All SQL about devices, their data and ports. Every query goes through core.tenancy.scoped()."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, case, cast, func, literal, or_, select
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ronda.agents.models import Agent
from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.devices import posture
from ronda.devices.models import Device, DeviceCount, DeviceData, DeviceEvaluation, DevicePort
from ronda.devices.schemas import normalize_hostname, normalize_mac, normalize_serial

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
# What a list row reads: every column of the device's API view and what decides is_online and the status.
ROW_COLUMNS = (
    Device.id, Device.tenant_id, Device.device_name, Device.hostname, Device.serial_number, Device.device_type,
    Device.os_type, Device.os_version, Device.os_guess, Device.ip, Device.mac, Device.vendor, Device.managed,
    Device.is_online, Device.first_seen, Device.last_seen, Device.site_id, Device.user_id, Device.tags, Device.note,
    Device.open_ports, Device.sources, Device.compliance_status, Device.compliance_score, Device.compliance_checks,
    Device.evaluated_at, Device.last_report_at,
)


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
        """True when a filter is set (stale_before alone is not a filter: it only qualifies compliance_status)."""
        return any(value is not None and value != "" for name, value in (
            ("site_id", self.site_id), ("is_online", self.is_online), ("vendor", self.vendor), ("os", self.os),
            ("device_type", self.device_type), ("compliance_status", self.compliance_status),
            ("managed", self.managed), ("user_id", self.user_id), ("tag", self.tag),
        ))


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
    (tenant_id, last_seen, id) instead of sorting the whole tenant for every page."""
    column = NOT_NULL_SORTS.get(sort.lstrip("-"))
    if column is None:
        return apply_sort(statement, sort, sort_fields(), (Device.id,))
    if sort.startswith("-"):
        return statement.order_by(column.desc(), Device.id.desc())
    return statement.order_by(column.asc(), Device.id.asc())


async def count(
    session: AsyncSession, principal: Principal, params: ListParams, filters: DeviceFilters, dialect: str
) -> int:
    """The exact number of devices the list holds. The whole tenant's list reads the count the
    database keeps (device_counts, one row by key); a narrowed list counts its rows."""
    if principal.role != "user" and not params.search and not filters.narrows():
        kept = await session.scalar(scoped(select(DeviceCount.total), DeviceCount, principal))
        if kept is not None:
            return int(kept)
    statement = _filtered(select(func.count()).select_from(Device), principal, params, filters, dialect)
    return int(await session.scalar(statement) or 0)


async def page_rows(
    session: AsyncSession, principal: Principal, params: ListParams, filters: DeviceFilters, dialect: str,
    *, default_sort: str = "-last_seen",
) -> Sequence[Row[Any]]:
    """One page of list rows (ROW_COLUMNS), without ORM objects. The page's ids are found first, in
    the sort index alone, then only those rows are read: a deep page skips index entries, not rows."""
    sort = params.sort or default_sort
    ids = (
        _sort(_filtered(select(Device.id), principal, params, filters, dialect), sort)
        .offset(params.skip).limit(params.limit).subquery("page")
    )
    statement = scoped(select(*ROW_COLUMNS).join(ids, ids.c.id == Device.id), Device, principal)
    rows: Sequence[Row[Any]] = (await session.execute(_sort(statement, sort))).all()
    return rows


async def get(
    session: AsyncSession, principal: Principal, device_id: str, *, for_update: bool = False
) -> Device | None:
    """One device the caller may see; another tenant's (or, for a `user`, another owner's) finds nothing."""
    statement = visible(select(Device).where(Device.id == device_id), principal)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    device: Device | None = (await session.execute(statement)).scalar_one_or_none()
    return device


async def latest_data(session: AsyncSession, tenant_id: str, device_ids: Sequence[str]) -> dict[str, list[DeviceData]]:
    """The newest DeviceData row of each type for every listed device, in one query."""
    if not device_ids:
        return {}
    rank = (
        func.row_number()
        .over(partition_by=(DeviceData.device_id, DeviceData.data_type),
              order_by=(DeviceData.collected_at.desc(), DeviceData.id.desc()))
        .label("rank")
    )
    ranked = scoped(select(DeviceData.id.label("id"), rank), DeviceData, tenant_id).where(
        DeviceData.device_id.in_(list(device_ids))
    ).subquery()
    statement = (
        select(DeviceData)
        .join(ranked, ranked.c.id == DeviceData.id)
        .where(ranked.c.rank == 1)
        .order_by(DeviceData.device_id, DeviceData.data_type)
    )
    out: dict[str, list[DeviceData]] = {device_id: [] for device_id in device_ids}
    for row in (await session.scalars(statement)).all():
        out[row.device_id].append(row)
    return out


async def latest_data_views(
    session: AsyncSession, tenant_id: str, device_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """latest_data() as the API's device_data entries (id, data_type, data, collected_at, last_seen_at), without
    ORM objects: for lists."""
    if not device_ids:
        return {}
    rank = (
        func.row_number()
        .over(partition_by=(DeviceData.device_id, DeviceData.data_type),
              order_by=(DeviceData.collected_at.desc(), DeviceData.id.desc()))
        .label("rank")
    )
    ranked = scoped(select(DeviceData.id.label("id"), rank), DeviceData, tenant_id).where(
        DeviceData.device_id.in_(list(device_ids))
    ).subquery()
    statement = (
        select(DeviceData.device_id, DeviceData.id, DeviceData.data_type, DeviceData.data, DeviceData.collected_at,
               DeviceData.last_seen_at)
        .join(ranked, ranked.c.id == DeviceData.id)
        .where(ranked.c.rank == 1)
        .order_by(DeviceData.device_id, DeviceData.data_type)
    )
    out: dict[str, list[dict[str, Any]]] = {device_id: [] for device_id in device_ids}
    for device_id, data_id, data_type, data, collected_at, last_seen_at in (await session.execute(statement)).all():
        out[device_id].append({"id": data_id, "data_type": data_type, "data": data, "collected_at": collected_at,
                               "last_seen_at": last_seen_at})
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

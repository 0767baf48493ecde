"""Device inventory rules: visibility, ownership, merge conflicts, online state, audit.

Flushes, never commits. The report/agent side (ingest.py, posture.py) shares to_read() and
effective_online() with these routes, so a device reads the same wherever it is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import ColumnElement, not_
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.authz import ADMIN_ROLES
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, csv_response, fetch_page
from ronda.core.principal import Principal
from ronda.core.responses import json_response
from ronda.core.runtime import Runtime
from ronda.core.timeutil import as_utc, utcnow
from ronda.devices import posture, repository
from ronda.devices.models import Device, DeviceData, data_last_seen
from ronda.devices.repository import DeviceFilters
from ronda.devices.schemas import (
    DATA_TYPES,
    Compliance,
    DeviceCreate,
    DeviceDataRead,
    DevicePatch,
    DevicePortList,
    DevicePortRead,
    DeviceRead,
    DeviceReplace,
    normalize_mac,
    normalize_serial,
)
from ronda.users import repository as users

STATUSES = frozenset(repository.STATUSES)
RESULTS = frozenset(repository.RESULTS)
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z  # as core.responses.ORJSONResponse renders
# What a `user` may change on a device it owns.
OWNER_EDITABLE = frozenset({"tags", "note", "device_name"})
IDENTITY = ("serial_number", "mac", "hostname", "site_id")
REPLACEABLE = ("device_name", "hostname", "serial_number", "device_type", "os_type", "os_version", "ip", "mac",
               "vendor", "site_id", "user_id", "tags", "note")


# --- how a device reads --------------------------------------------------------------------------


def effective_online(device: Device, now: datetime, offline_after: int) -> bool:
    """THE online rule. A managed device (it has an agent) is online while its last contact is
    within `offline_after` seconds; any other device carries the state its last scan stored.
    (repository.online_sql is the same rule in SQL, for the list and its is_online filter.)"""
    if device.managed:
        last_seen = as_utc(device.last_seen)
        return last_seen is not None and last_seen >= now - timedelta(seconds=offline_after)
    return bool(device.is_online)


def online_clause(now: datetime, offline_after: int, online: bool = True) -> ColumnElement[bool]:
    """effective_online() as SQL, for the is_online filter."""
    is_online = repository.online_sql(now - timedelta(seconds=offline_after))
    return is_online if online else not_(is_online)


def compliance_of(device: Device, stale_before: datetime | None = None) -> Compliance:
    """The stored evaluation; its status reads `unknown` once the last report is older than
    `stale_before` (the tenant policy's stale_after_days, see devices.posture)."""
    stored = device.compliance_checks if isinstance(device.compliance_checks, dict) else {}
    checks = {name: result for name, result in stored.items() if isinstance(result, str) and result in RESULTS}
    status = posture.effective_status(device, stale_before)
    status = status if status in STATUSES else "unknown"
    return Compliance.model_validate(
        {"status": status, "score": device.compliance_score, "checks": checks, "evaluated_at": device.evaluated_at}
    )


def data_read(row: DeviceData, device: Device) -> DeviceDataRead:
    last_seen = data_last_seen(row.id, row.data_type, row.last_seen_at, device.live_data, device.last_report_at)
    return DeviceDataRead(id=row.id, data_type=row.data_type, data=row.data,  # type: ignore[arg-type]
                          collected_at=row.collected_at, last_seen_at=last_seen)


def to_read(
    device: Device, data_rows: Sequence[DeviceData] | None, now: datetime, offline_after: int,
    stale_before: datetime | None = None,
) -> DeviceRead:
    """The API view of a device; `data_rows` None leaves device_data out (include_data=false)."""
    return DeviceRead(
        id=device.id,
        tenant_id=device.tenant_id,
        device_name=device.device_name,
        hostname=device.hostname,
        serial_number=device.serial_number,
        device_type=device.device_type or "unknown",
        os_type=device.os_type,
        os_version=device.os_version,
        os_guess=device.os_guess,
        ip=device.ip,
        mac=device.mac,
        vendor=device.vendor,
        is_online=effective_online(device, now, offline_after),
        first_seen=device.first_seen,
        last_seen=device.last_seen,
        site_id=device.site_id,
        user_id=device.user_id,
        tags=list(device.tags or []),
        note=device.note,
        open_ports=list(device.open_ports or []),
        sources=list(device.sources or []),
        managed=bool(device.managed),
        compliance=compliance_of(device, stale_before),
        device_data=None if data_rows is None else [data_read(row, device) for row in data_rows],
    )


# --- lists ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """The list filters as the router received them."""

    site_id: str | None = None
    is_online: bool | None = None
    vendor: str | None = None
    os: str | None = None
    device_type: str | None = None
    compliance_status: str | None = None
    managed: bool | None = None
    user_id: str | None = None
    tag: str | None = None


def csv_columns(
    now: datetime, offline_after: int, stale_before: datetime | None = None
) -> list[tuple[str, Callable[[Any], Any]]]:
    plain = ("id", "device_name", "hostname", "serial_number", "device_type", "os_type", "os_version", "ip", "mac",
             "vendor")
    columns: list[tuple[str, Callable[[Any], Any]]] = [(name, attrgetter(name)) for name in plain]
    columns.append(("is_online", lambda device: effective_online(device, now, offline_after)))
    columns.extend((name, attrgetter(name)) for name in ("last_seen", "user_id", "site_id", "tags", "open_ports",
                                                          "sources", "managed"))
    columns.append(("compliance_status", lambda device: posture.effective_status(device, stale_before)))
    columns.append(("compliance_score", attrgetter("compliance_score")))
    return columns


def _filters(rt: Runtime, query: DeviceQuery, now: datetime, stale_before: datetime | None) -> DeviceFilters:
    online = None
    if query.is_online is not None:
        online = online_clause(now, rt.settings.agent_offline_after, query.is_online)
    return DeviceFilters(
        site_id=query.site_id, is_online=online, vendor=query.vendor, os=query.os, device_type=query.device_type,
        compliance_status=query.compliance_status, managed=query.managed, user_id=query.user_id, tag=query.tag,
        stale_before=stale_before,
    )


async def list_devices(
    session: AsyncSession, rt: Runtime, principal: Principal, params: ListParams, query: DeviceQuery,
    *, include_data: bool,
) -> Response:
    """One page of the devices the caller may see as Page[DeviceRead] JSON, or every match as CSV.

    The page and its total in one query (authentication aside), two with include_data; an empty page
    counts apart. The whole tenant's total is the count the database keeps; each device of the page
    arrives as its JSON text, rendered by the database by to_read()'s rules (repository.device_json),
    and only device_data (with include_data) is added here."""
    now = utcnow()
    stale = await posture.stale_before(session, principal.tenant_id, now)
    filters = _filters(rt, query, now, stale)
    dialect = rt.engine.dialect.name
    offline_after = rt.settings.agent_offline_after
    if params.csv:
        statement = repository.list_statement(principal, params, filters, dialect)
        return csv_response(rt.sessions, statement, csv_columns(now, offline_after, stale), "devices.csv")
    rows, total = await repository.page_json(
        session, principal, params, filters, dialect, online_since=now - timedelta(seconds=offline_after),
        stale_before=stale,
    )
    if total is None:  # an empty page (past the end, or no devices) carries no count
        total = await repository.count(session, principal, params, filters, dialect)
    data = await repository.latest_data_views(session, principal.tenant_id, [row[0] for row in rows]) \
        if include_data else {}
    items = b",".join(_listed(text, checks, data.get(device_id, []) if include_data else None)
                      for device_id, text, checks in rows)
    return json_response({"data": orjson.Fragment(b"[" + items + b"]"), "meta": params.meta(total).model_dump()})


def _listed(device_json: str, stored_checks: str | None, data: list[dict[str, Any]] | None) -> bytes:
    """A device's JSON object from the database (repository.device_json), with device_data (null
    without include_data) and, as compliance_of() shows them, only the checks whose result is pass,
    fail or unknown: the object is rewritten in the rare case a stored result is anything else."""
    checks = orjson.loads(stored_checks) if stored_checks else None
    if isinstance(checks, dict) and not all(isinstance(v, str) and v in RESULTS for v in checks.values()):
        device = orjson.loads(device_json)
        device["compliance"]["checks"] = {name: result for name, result in checks.items()
                                          if isinstance(result, str) and result in RESULTS}
        device_json = orjson.dumps(device).decode()
    if not device_json.endswith("}"):  # never: the database renders an object
        raise ValueError("device JSON is not an object")
    tail = b',"device_data":null}' if data is None else \
        b',"device_data":' + orjson.dumps(data, option=JSON_OPTIONS) + b"}"
    return device_json[:-1].encode() + tail


def require_admin(principal: Principal) -> None:
    if principal.role not in ADMIN_ROLES:
        raise AppError(403, "Only an administrator may list every device of the tenant")


# --- one device ----------------------------------------------------------------------------------


async def _visible(session: AsyncSession, principal: Principal, device_id: str, *, for_update: bool = False) -> Device:
    device = await repository.get(session, principal, device_id, for_update=for_update)
    if device is None:
        raise not_found("Device")
    return device


async def get_device(
    session: AsyncSession, rt: Runtime, principal: Principal, device_id: str, *, include_data: bool
) -> DeviceRead:
    device = await _visible(session, principal, device_id)
    rows = (await repository.latest_data(session, principal.tenant_id, [device.id]))[device.id] if include_data \
        else None
    now = utcnow()
    return to_read(device, rows, now, rt.settings.agent_offline_after,
                   await posture.stale_before(session, principal.tenant_id, now))


async def device_ports(session: AsyncSession, principal: Principal, device_id: str) -> DevicePortList:
    device = await _visible(session, principal, device_id)
    rows = await repository.ports(session, principal.tenant_id, device.id)
    return DevicePortList(data=[DevicePortRead.model_validate(row) for row in rows])


def parse_moment(text: str) -> datetime:
    """An ISO date (meaning the end of that UTC day) or date-time (naive means UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise AppError(400, "at must be an ISO 8601 date or date-time, like 2026-01-04 or 2026-01-04T10:30:00Z",
                       details=[{"field": "at", "location": "query", "reason": "not an ISO 8601 date or time"}]
                       ) from None
    result = as_utc(moment)
    assert result is not None
    return result


def _check_data_type(data_type: str) -> None:
    if data_type not in DATA_TYPES:
        raise AppError(
            400, f"Unknown data type '{data_type[:40]}'; choose one of {', '.join(DATA_TYPES)}",
            details=[{"field": "data_type", "location": "path", "reason": f"must be one of {', '.join(DATA_TYPES)}"}],
        )


async def device_data(
    session: AsyncSession, principal: Principal, device_id: str, data_type: str, *, at: str | None,
    history: bool, params: ListParams,
) -> DeviceDataRead | Page[DeviceDataRead]:
    """The latest version of one kind of data, the one current at `at`, or (history) every version."""
    device = await _visible(session, principal, device_id)
    _check_data_type(data_type)
    moment = parse_moment(at) if at is not None else None
    if history:
        statement = repository.data_statement(principal.tenant_id, device.id, data_type, moment)
        rows, total = await fetch_page(session, statement, params)
        return Page[DeviceDataRead](data=[data_read(row, device) for row in rows], meta=params.meta(total))
    row = await repository.data_version(session, principal.tenant_id, device.id, data_type, moment)
    if row is None:
        when = f" as of {at}" if at is not None else ""
        raise AppError(404, f"No {data_type} data for this device{when}")
    return data_read(row, device)


# --- changes -------------------------------------------------------------------------------------


def _problem(field: str, reason: str) -> list[dict[str, str]]:
    return [{"field": field, "location": "body", "reason": reason}]


async def _check_owner(session: AsyncSession, principal: Principal, user_id: str) -> None:
    if await users.get(session, principal, user_id) is None:
        raise AppError(400, "user_id is not a user of your tenant", details=_problem("user_id", "no such user"))


async def _check_unique(
    session: AsyncSession, principal: Principal, values: dict[str, Any], exclude_id: str | None = None
) -> None:
    """A manual entry describing a device already in the inventory is a conflict naming that device."""
    existing = await repository.find_match(
        session, principal.tenant_id, serial_number=values.get("serial_number"), mac=values.get("mac"),
        hostname=values.get("hostname"), site_id=values.get("site_id"), exclude_id=exclude_id,
    )
    if existing is None:
        return
    if values.get("serial_number") and normalize_serial(existing.serial_number) == values["serial_number"]:
        field = "serial_number"
    elif values.get("mac") and existing.mac == values["mac"]:
        field = "mac"
    else:
        field = "hostname"
    raise AppError(
        409, f"Device {existing.id} already has this {field.replace('_', ' ')}",
        details=[{"field": field, "location": "body", "reason": "matches an existing device",
                  "device_id": existing.id}],
    )


def _audit_value(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


async def create_device(
    session: AsyncSession, rt: Runtime, principal: Principal, body: DeviceCreate, actor: Actor
) -> DeviceRead:
    values = body.model_dump()
    values["serial_number"] = normalize_serial(values["serial_number"])
    values["mac"] = normalize_mac(values["mac"])
    if principal.role == "user":
        if values["user_id"] not in (None, principal.user_id):
            raise AppError(403, "You can only add devices you own")
        values["user_id"] = principal.user_id
    elif values["user_id"] is not None:
        await _check_owner(session, principal, values["user_id"])
    await _check_unique(session, principal, values)
    now = utcnow()
    device = Device(
        tenant_id=principal.tenant_id, device_type=values.pop("device_type") or "unknown",
        tags=values.pop("tags") or [], sources=["manual"], open_ports=[], managed=False, is_online=False,
        first_seen=now, last_seen=now, created_at=now, updated_at=now, compliance_status="unknown",
        compliance_checks={}, **values,
    )
    session.add(device)
    await session.flush()
    fields = {name: _audit_value(getattr(device, name)) for name in REPLACEABLE if getattr(device, name)}
    await audit.record(session, actor, "device.created", resource_type="device", resource_id=device.id,
                       metadata={"source": "manual", "fields": fields})
    return to_read(device, [], now, rt.settings.agent_offline_after)


async def _apply(
    session: AsyncSession, rt: Runtime, principal: Principal, device: Device, values: dict[str, Any], actor: Actor
) -> DeviceRead:
    changes = {
        name: {"old": _audit_value(getattr(device, name)), "new": _audit_value(value)}
        for name, value in values.items()
        if getattr(device, name) != value
    }
    if principal.role == "user":
        refused = sorted(set(changes) - OWNER_EDITABLE)
        if refused:
            raise AppError(403, "You may change only the name, tags and note of your devices, "
                                f"not {', '.join(refused)}")
    if "user_id" in changes and values["user_id"] is not None:
        await _check_owner(session, principal, values["user_id"])
    if any(name in changes for name in IDENTITY):
        merged = {name: values.get(name, getattr(device, name)) for name in IDENTITY}
        await _check_unique(session, principal, merged, exclude_id=device.id)
    if changes:
        for name, value in values.items():
            setattr(device, name, value)
        device.updated_at = utcnow()
        await session.flush()
        await audit.record(session, actor, "device.updated", resource_type="device", resource_id=device.id,
                           metadata={"changes": changes})
    rows = (await repository.latest_data(session, principal.tenant_id, [device.id]))[device.id]
    now = utcnow()
    return to_read(device, rows, now, rt.settings.agent_offline_after,
                   await posture.stale_before(session, principal.tenant_id, now))


async def replace_device(
    session: AsyncSession, rt: Runtime, principal: Principal, device_id: str, body: DeviceReplace, actor: Actor
) -> DeviceRead:
    """PUT: every editable field takes the body's value; one left out is cleared."""
    device = await _visible(session, principal, device_id, for_update=True)
    if not body.identifies():
        raise AppError(400, "give at least one of device_name, hostname, serial_number, ip or mac",
                       details=_problem("device_name", "a device needs a name, hostname, serial number, IP or MAC"))
    values = body.model_dump()
    values["serial_number"] = normalize_serial(values["serial_number"])
    values["mac"] = normalize_mac(values["mac"])
    values["tags"] = values["tags"] or []
    values["device_type"] = values["device_type"] or "unknown"
    return await _apply(session, rt, principal, device, values, actor)


async def patch_device(
    session: AsyncSession, rt: Runtime, principal: Principal, device_id: str, body: DevicePatch, actor: Actor
) -> DeviceRead:
    """PATCH: only the fields sent change; user_id null removes the owner."""
    device = await _visible(session, principal, device_id, for_update=True)
    values = {name: getattr(body, name) for name in body.model_fields_set}
    if "tags" in values:
        values["tags"] = values["tags"] or []
    if "device_type" in values:
        values["device_type"] = values["device_type"] or "unknown"
    return await _apply(session, rt, principal, device, values, actor)


async def delete_device(session: AsyncSession, principal: Principal, device_id: str, actor: Actor) -> None:
    """Remove a device with its data, ports, evaluations and agents (whose credentials stop working)."""
    device = await _visible(session, principal, device_id, for_update=True)
    if principal.role == "user":
        raise AppError(403, "Only an administrator may delete a device")
    removed = await repository.delete(session, principal, device.id)
    await audit.record(session, actor, "device.deleted", resource_type="device", resource_id=device.id,
                       metadata={"device_name": device.device_name, "hostname": device.hostname,
                                 "serial_number": device.serial_number, "mac": device.mac, "removed": removed})

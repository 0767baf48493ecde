"""POST /devices/report: create or update one device from a report, cheaply.

The write path is built for check-in rates (a million devices every 15 minutes is ~1,100 a second).
An unchanged agent check-in costs: the credential look-up (which also loads the agent's device and
tenant into the session), one query for the latest data digests, one UPDATE bumping those rows'
last_seen_at, and one UPDATE each of the device and the agent. Data rows are written only when a
section's content digest changed; ports are synchronised only when the network section changed;
audit records only for real changes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import Select, Table, Update, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from ronda.agents.models import Agent
from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.errors import AppError
from ronda.core.ids import new_id
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.devices import posture, repository
from ronda.devices.models import Device, DeviceData, DevicePort
from ronda.devices.report_schemas import Interface, ListeningPort, ReportBody
from ronda.devices.schemas import DeviceRead, normalize_hostname, normalize_mac, normalize_serial
from ronda.devices.service import to_read
from ronda.tenants.models import Tenant
from ronda.users import repository as users

SOURCE = "agent"
OS_ALIASES = {"darwin": "macos", "mac": "macos", "macosx": "macos", "osx": "macos", "win32": "windows",
              "windows_nt": "windows", "win": "windows"}
AUDITED_FIELDS = ("device_name", "hostname", "serial_number", "device_type", "os_type", "os_version", "ip", "mac",
                  "vendor", "site_id", "user_id", "managed", "sources", "open_ports")


@dataclass(frozen=True, slots=True)
class Facts:
    """What a report says about the device's identity and its headline fields."""

    serial: str | None
    hostname: str | None
    ip: str | None
    mac: str | None
    macs: tuple[str, ...]
    vendor: str | None
    os_type: str | None
    listeners: tuple[ListeningPort, ...] | None = None
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def identifies(self) -> bool:
        return bool(self.serial or self.hostname or self.macs)


# --- pure helpers ------------------------------------------------------------------------------


def digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys): equal content, equal digest."""
    try:
        encoded = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        raise AppError(400, "Invalid request: a report section is nested too deeply or holds a value JSON "
                            "cannot carry") from None
    return hashlib.sha256(encoded).hexdigest()


def payloads_of(body: ReportBody) -> dict[str, dict[str, Any]]:
    """Each section the report carries, as it will be stored."""
    out: dict[str, dict[str, Any]] = {}
    if body.security is not None:
        out["security"] = body.security.model_dump(exclude_unset=True)
    if body.hardware is not None:
        out["hardware"] = body.hardware.model_dump(exclude_unset=True)
    if body.software is not None:
        out["software"] = {"packages": body.software} if isinstance(body.software, list) else body.software
    if body.network is not None:
        out["network"] = body.network.model_dump(exclude_unset=True)
    if body.custom is not None:
        out["custom"] = body.custom
    return out


@lru_cache(maxsize=8192)
def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Cached: every check-in of a device names the same few addresses, several times over.
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _is_loopback(interface: Interface) -> bool:
    if (interface.name or "").lower() in ("lo", "lo0", "loopback"):
        return True
    addresses = [_address(a) for a in interface.addresses()]
    return bool(addresses) and all(a is not None and a.is_loopback for a in addresses)


def _best_ip(interface: Interface) -> str | None:
    addresses = [a for a in (_address(text) for text in interface.addresses()) if a is not None]
    usable = [a for a in addresses if not (a.is_loopback or a.is_link_local or a.is_unspecified)]
    v4 = [a for a in usable if a.version == 4]
    chosen = (v4 or usable or [None])[0]
    return None if chosen is None else str(chosen)


def primary_interface(interfaces: Iterable[Interface], name: str | None = None) -> Interface | None:
    """The one named (network.primary_interface) or flagged primary, else the first with a routable
    IPv4 address, else the first with any."""
    candidates = [i for i in interfaces if not _is_loopback(i)]
    for interface in candidates:
        if interface.primary or (name and interface.name == name):
            return interface
    ranked = sorted(candidates, key=lambda i: (_best_ip(i) is None, ":" in (_best_ip(i) or ""),
                                               normalize_mac(i.mac) is None))
    return ranked[0] if ranked else None


def _globally_administered(mac: str) -> bool:
    # Locally administered MACs (virtual adapters, randomised Wi-Fi) are not stable identities.
    return not int(mac[:2], 16) & 0x02


def facts_of(body: ReportBody) -> Facts:
    network = body.network
    primary = primary_interface(network.interfaces, network.primary_interface) if network else None
    primary_mac = normalize_mac(primary.mac) if primary else None
    if network and network.primary_mac:
        primary_mac = normalize_mac(network.primary_mac) or primary_mac
    macs = [primary_mac] if primary_mac else []
    for interface in network.interfaces if network else ():
        mac = normalize_mac(interface.mac)
        if mac and mac not in macs and not _is_loopback(interface) and _globally_administered(mac):
            macs.append(mac)
    hardware = body.hardware
    serial = normalize_serial(body.serial_number) or normalize_serial(hardware.serial_number if hardware else None)
    os_type = OS_ALIASES.get(body.os_type, body.os_type) if body.os_type else None
    return Facts(
        serial=serial,
        hostname=normalize_hostname(body.hostname),
        ip=(network.primary_ip if network and network.primary_ip else None) or (_best_ip(primary) if primary else None),
        mac=primary_mac,
        macs=tuple(macs),
        vendor=(hardware.manufacturer or None) if hardware else None,
        os_type=os_type,
        listeners=tuple(network.listening_ports) if network is not None else None,
        payloads=payloads_of(body),
    )


def _exposed(listener: ListeningPort) -> bool:
    """Listening on a loopback address only is not an open port of the device."""
    address = _address((listener.address or "").strip("[]"))
    return address is None or not address.is_loopback


def _audit_value(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


# --- SQL of the report path ------------------------------------------------------------------


# The two statements every check-in runs are built once per tenant (the device and rows are bound
# at execution): building and cache-keying a statement costs more than the look-up it performs.


@lru_cache(maxsize=4096)
def _latest_statement(tenant_id: str) -> Select[Any]:
    rank = func.row_number().over(
        partition_by=DeviceData.data_type, order_by=(DeviceData.collected_at.desc(), DeviceData.id.desc())
    )
    ranked = (
        scoped(select(DeviceData.id, DeviceData.data_type, DeviceData.digest, rank.label("rank")), DeviceData,
               tenant_id)
        .where(DeviceData.device_id == bindparam("device_id"))
        .subquery()
    )
    return select(ranked.c.id, ranked.c.data_type, ranked.c.digest).where(ranked.c.rank == 1)


@lru_cache(maxsize=4096)
def _confirm_statement(tenant_id: str) -> Update:
    # One row per parameter set, by primary key: with `id IN (...)` SQLite's planner (no statistics)
    # prefers the tenant_id index and walks every data row of the tenant.
    table = cast(Table, DeviceData.__table__)
    return scoped(update(table), DeviceData, tenant_id).where(table.c.id == bindparam("row_id")).values(
        last_seen_at=bindparam("now"))


# The statements below touch no loaded object's state, so they run on the session's connection
# (Core): the ORM's per-statement work (bulk-update bookkeeping, ORM result set-up) is skipped.


async def latest_digests(session: AsyncSession, tenant_id: str, device_id: str) -> dict[str, tuple[str, str]]:
    """data_type -> (row id, digest) of the device's newest version of each kind of data."""
    connection = await session.connection()
    rows = await connection.execute(_latest_statement(tenant_id), {"device_id": device_id})
    return {data_type: (row_id, value) for row_id, data_type, value in rows.all()}


async def confirm_data(session: AsyncSession, tenant_id: str, row_ids: list[str], now: datetime) -> None:
    connection = await session.connection()
    await connection.execute(_confirm_statement(tenant_id), [{"row_id": row_id, "now": now} for row_id in row_ids])


@lru_cache(maxsize=4096)
def _touch_device_statement(tenant_id: str) -> Update:
    table = cast(Table, Device.__table__)
    return scoped(update(table), Device, tenant_id).where(table.c.id == bindparam("device_id")).values(
        last_seen=bindparam("now"), last_report_at=bindparam("now"), evaluated_at=bindparam("now"))


@lru_cache(maxsize=4096)
def _touch_agent_statement(tenant_id: str) -> Update:
    table = cast(Table, Agent.__table__)
    return scoped(update(table), Agent, tenant_id).where(table.c.id == bindparam("agent_id")).values(
        last_report_at=bindparam("now"), last_heartbeat_at=bindparam("now"))


async def _touch(session: AsyncSession, device: Device, agent: Agent | None, now: datetime) -> None:
    """Record an unchanged check-in: the device (and its agent) were seen and reported now."""
    connection = await session.connection()
    await connection.execute(_touch_device_statement(device.tenant_id), {"device_id": device.id, "now": now})
    for name in ("last_seen", "last_report_at", "evaluated_at"):
        set_committed_value(device, name, now)  # the loaded object agrees, without a second UPDATE
    if agent is not None:
        await connection.execute(_touch_agent_statement(agent.tenant_id), {"agent_id": agent.id, "now": now})
        for name in ("last_report_at", "last_heartbeat_at"):
            set_committed_value(agent, name, now)


async def sync_ports(
    session: AsyncSession, device: Device, listeners: Iterable[ListeningPort], now: datetime, *, new: bool = False
) -> list[int]:
    """Make the device's agent-sourced ports match what it listens on; returns the open port numbers."""
    wanted: dict[tuple[int, str], ListeningPort] = {}
    for listener in listeners:
        if listener.port and _exposed(listener):
            key = (listener.port, listener.protocol)
            if key not in wanted or (listener.process and not wanted[key].process):
                wanted[key] = listener
    known = [] if new else await repository.ports(session, device.tenant_id, device.id)
    rows = {(row.port, row.protocol): row for row in known}
    for key, listener in wanted.items():
        row = rows.get(key)
        if row is None:
            session.add(DevicePort(
                id=new_id("port"), tenant_id=device.tenant_id, device_id=device.id, port=key[0], protocol=key[1],
                state="open", process=listener.process, source=SOURCE, first_seen=now, last_seen=now,
            ))
            continue
        row.last_seen = now
        row.state = "open"
        if listener.process and row.process != listener.process:
            row.process = listener.process
    for key, row in rows.items():
        if key not in wanted and row.source == SOURCE:
            await session.delete(row)
    kept = {row.port for key, row in rows.items() if row.state == "open" and (key in wanted or row.source != SOURCE)}
    return sorted(kept | {key[0] for key in wanted})


# --- the rules ---------------------------------------------------------------------------------


async def _agent_device(session: AsyncSession, principal: Principal, body: ReportBody, facts: Facts) -> Device:
    """An agent reports for the one device it is bound to, and nothing else."""
    device = await session.get(Device, principal.device_id)
    if device is None or device.tenant_id != principal.tenant_id:
        raise AppError(404, "Device not found")
    if facts.serial and facts.serial != normalize_serial(device.serial_number):
        other = await repository.find_match(session, principal.tenant_id, serial_number=facts.serial, mac=None,
                                            hostname=None, site_id=None, exclude_id=device.id)
        if other is not None and normalize_serial(other.serial_number) == facts.serial:
            raise AppError(403, "This agent may only report for its own device; that serial number is another "
                                "device's")
    if body.user_id is not None and body.user_id != device.user_id:
        raise AppError(403, "An agent cannot change a device's owner")
    return device


async def _owner(session: AsyncSession, principal: Principal, body: ReportBody, device: Device | None) -> str | None:
    """Who owns the device after this report: a user owns what it reports; an admin may name anyone."""
    if not principal.is_admin:
        return principal.user_id or None
    if body.user_id is not None and (device is None or body.user_id != device.user_id):
        if await users.get(session, principal, body.user_id) is None:
            raise AppError(400, "user_id is not a user of your tenant",
                           details=[{"field": "user_id", "location": "body", "reason": "no such user"}])
        return body.user_id
    if device is None:
        return principal.user_id or None
    return device.user_id


async def _reported_device(
    session: AsyncSession, principal: Principal, body: ReportBody, facts: Facts
) -> tuple[Device | None, str | None]:
    """A person's or a key's report: find the device by the merge rules and check ownership."""
    if body.user_id is not None and body.user_id != principal.user_id and not principal.is_admin:
        raise AppError(403, "Only an administrator may report a device for another user")
    if not facts.identifies:
        raise AppError(400, "Invalid request: the report must identify the device by serial_number, hostname or a "
                            "network interface MAC",
                       details=[{"field": "serial_number", "location": "body",
                                 "reason": "give serial_number, hostname or network.interfaces[].mac"}])
    device = await repository.find_match(session, principal.tenant_id, serial_number=facts.serial,
                                         mac=list(facts.macs), hostname=facts.hostname, site_id=body.site_id)
    if device is not None and not principal.is_admin and device.user_id not in (None, principal.user_id):
        raise AppError(403, "This device belongs to another user")
    return device, await _owner(session, principal, body, device)


def _new_device(principal: Principal, body: ReportBody, facts: Facts, owner: str | None, now: datetime) -> Device:
    return Device(
        id=new_id("dev"), tenant_id=principal.tenant_id, site_id=body.site_id, user_id=owner,
        device_name=body.device_name or facts.hostname, hostname=facts.hostname, serial_number=facts.serial,
        device_type=body.device_type or "unknown", os_type=facts.os_type, os_version=body.os_version,
        ip=facts.ip, mac=facts.mac, vendor=facts.vendor, tags=[], open_ports=[], sources=[SOURCE],
        managed=principal.kind == "agent", is_online=False, first_seen=now, last_seen=now, last_report_at=now,
        compliance_status="unknown", compliance_score=None, compliance_checks={}, created_at=now, updated_at=now,
    )


def _field_updates(device: Device, principal: Principal, body: ReportBody, facts: Facts,
                   owner: str | None) -> dict[str, Any]:
    wanted: dict[str, Any] = {
        "device_name": body.device_name, "hostname": facts.hostname, "serial_number": facts.serial,
        "device_type": body.device_type, "os_type": facts.os_type, "os_version": body.os_version, "ip": facts.ip,
        "mac": facts.mac, "vendor": facts.vendor, "site_id": body.site_id,
    }
    out = {name: value for name, value in wanted.items() if value is not None and getattr(device, name) != value}
    if principal.kind != "agent" and owner != device.user_id:
        out["user_id"] = owner
    if SOURCE not in (device.sources or []):
        out["sources"] = [*(device.sources or []), SOURCE]
    if principal.kind == "agent" and not device.managed:
        out["managed"] = True
    return out


async def ingest(
    session: AsyncSession, principal: Principal, body: ReportBody, actor: Actor, *, now: datetime,
    offline_after: int,
) -> tuple[DeviceRead, bool]:
    """Create or update the reported device; returns its view and whether it was created."""
    facts = facts_of(body)
    digests = {data_type: digest(data) for data_type, data in facts.payloads.items()}
    if principal.kind == "agent":
        device: Device | None = await _agent_device(session, principal, body, facts)
        owner = device.user_id if device is not None else None
    else:
        device, owner = await _reported_device(session, principal, body, facts)
    created = device is None
    tenant = await session.get(Tenant, principal.tenant_id)  # already loaded for agents
    policy = posture.policy_of(tenant)

    # Data first: the bulk UPDATE flushes pending changes, so device edits come after it (one UPDATE).
    existing = {} if device is None else await latest_digests(session, principal.tenant_id, device.id)
    changed_types = [t for t in facts.payloads if existing.get(t, ("", ""))[1] != digests[t]]
    confirmed = [existing[t][0] for t in facts.payloads if t not in changed_types]
    if confirmed:
        await confirm_data(session, principal.tenant_id, confirmed, now)

    changes: dict[str, dict[str, Any]] = {}
    security = facts.payloads.get("security")
    compliance_change: posture.Change | None
    if device is None:
        device = _new_device(principal, body, facts, owner, now)
        result = posture.evaluate(posture.checks_from_security(security), policy, device.os_type, device.os_version)
        compliance_change = posture.set_result(device, result, now)
        session.add(device)
        await session.flush()  # rows below refer to it, and no ORM relationship orders the inserts
        if compliance_change is not None:
            session.add(posture.history_row(device, now))
    else:
        for name, value in _field_updates(device, principal, body, facts, owner).items():
            changes[name] = {"old": _audit_value(getattr(device, name)), "new": _audit_value(value)}
            setattr(device, name, value)
        checks = posture.checks_from_security(security) if security is not None \
            else posture.base_checks(device.compliance_checks)
        result = posture.evaluate(checks, policy, device.os_type, device.os_version)
        agent = await session.get(Agent, principal.agent_id) if principal.agent_id else None  # already loaded
        new_version = body.agent_version if agent is not None and body.agent_version not in (
            None, agent.agent_version) else None
        if not changes and not changed_types and new_version is None and not posture.changed(device, result):
            # The common check-in: nothing changed. Two plain UPDATEs, no unit-of-work flush.
            await _touch(session, device, agent, now)
            return to_read(device, None, now, offline_after), False
        device.last_seen = now
        device.last_report_at = now
        compliance_change = posture.record(session, device, result, now)
        if agent is not None:
            agent.last_report_at = now
            agent.last_heartbeat_at = now
            if new_version is not None:
                agent.agent_version = new_version
    for data_type in changed_types:
        session.add(DeviceData(
            id=new_id("dd"), tenant_id=device.tenant_id, device_id=device.id, data_type=data_type,
            data=facts.payloads[data_type], digest=digests[data_type], collected_at=now, last_seen_at=now,
        ))
    if facts.listeners is not None and "network" in changed_types:
        open_ports = await sync_ports(session, device, facts.listeners, now, new=created)
        if open_ports != list(device.open_ports or []):
            if not created:
                changes["open_ports"] = {"old": list(device.open_ports or []), "new": open_ports}
            device.open_ports = open_ports
    if created:
        fields = {name: _audit_value(getattr(device, name)) for name in AUDITED_FIELDS if getattr(device, name)}
        await audit.record(session, actor, "device.created", resource_type="device", resource_id=device.id,
                           metadata={"source": SOURCE, "fields": fields, "data": changed_types})
    elif changes or changed_types:
        await audit.record(session, actor, "device.updated", resource_type="device", resource_id=device.id,
                           metadata={"source": SOURCE, "changes": changes, "data_changed": changed_types})
    await posture.announce(session, device, compliance_change, actor)
    return to_read(device, None, now, offline_after), created

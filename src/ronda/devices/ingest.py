"""POST /devices/report: create or update one device from a report, cheaply.

The write path is built for check-in rates (a million devices every 15 minutes is ~1,100 a second).
An unchanged agent check-in costs: the credential look-up (which also loads the agent's device,
with the digests of the data its last report carried, and its tenant into the session), and one
UPDATE each of the device and the agent (one statement on PostgreSQL). The data rows it confirms
are not rewritten: their confirmation is the device's last_report_at while they stay current
(models.data_last_seen), and is written into them when they stop being current. Data rows are
written only when a section's content digest changed; ports are synchronised only when the network
section changed; audit records only for real changes.
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
from sqlalchemy.orm.util import identity_key

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
    # prefers the tenant_id index and walks every data row of the tenant. Never moves a row back in time.
    table = cast(Table, DeviceData.__table__)
    return scoped(update(table), DeviceData, tenant_id).where(
        table.c.id == bindparam("row_id"), table.c.last_seen_at < bindparam("seen", type_=table.c.last_seen_at.type)
    ).values(last_seen_at=bindparam("seen"))


# The statements below touch no loaded object's state, so they run on the session's connection
# (Core): the ORM's per-statement work (bulk-update bookkeeping, ORM result set-up) is skipped.


async def latest_digests(session: AsyncSession, tenant_id: str, device_id: str) -> dict[str, tuple[str, str]]:
    """data_type -> (row id, digest) of the device's newest version of each kind of data."""
    connection = await session.connection()
    rows = await connection.execute(_latest_statement(tenant_id), {"device_id": device_id})
    return {data_type: (row_id, value) for row_id, data_type, value in rows.all()}


async def confirm_data(session: AsyncSession, tenant_id: str, seen: Mapping[str, datetime]) -> None:
    """Bring data rows' last_seen_at up to the given times (row id -> when it was last confirmed)."""
    if seen:
        connection = await session.connection()
        await connection.execute(_confirm_statement(tenant_id),
                                 [{"row_id": row_id, "seen": when} for row_id, when in seen.items()])


def live_unchanged(device: Device, digests: Mapping[str, str]) -> bool:
    """The report carries exactly the data the last one did, digest for digest (devices.live_data)."""
    live = device.live_data
    if live is None or live.keys() != digests.keys():
        return False
    return all(entry[1] == digests[data_type] for data_type, entry in live.items())


@lru_cache(maxsize=4096)
def _lock_statement(tenant_id: str) -> Select[Any]:
    table = cast(Table, Device.__table__)
    return scoped(select(table.c.last_report_at), Device, tenant_id).where(
        table.c.id == bindparam("device_row")).with_for_update()


async def lock_device(session: AsyncSession, device: Device) -> None:
    """Before a report rewrites the device's data: on PostgreSQL, wait for any other report of it to
    commit, and reload the device if one did since it was read (every report moves last_report_at),
    so live_data always names the newest versions. (SQLite's write transactions run one at a time.)"""
    if session.get_bind().dialect.name == "sqlite":
        return
    connection = await session.connection()
    current = (await connection.execute(_lock_statement(device.tenant_id), {"device_row": device.id})).scalar()
    if current != device.last_report_at:
        await session.refresh(device)


@lru_cache(maxsize=4096)
def _touch_device_statement(tenant_id: str) -> Update:
    table = cast(Table, Device.__table__)
    # Only if no other report of the device came in since it was read (its data, and so what
    # live_data names, may have changed). updated_at explicitly: its Python-side onupdate is not
    # applied to a statement carrying a WITH.
    previous = bindparam("previous_report", type_=table.c.last_report_at.type)
    return scoped(update(table), Device, tenant_id).where(
        table.c.id == bindparam("device_row"), table.c.last_report_at == previous
    ).values(last_seen=bindparam("now"), last_report_at=bindparam("now"), evaluated_at=bindparam("now"),
             updated_at=bindparam("now"))


@lru_cache(maxsize=4096)
def _touch_agent_statement(tenant_id: str) -> Update:
    table = cast(Table, Agent.__table__)
    return scoped(update(table), Agent, tenant_id).where(table.c.id == bindparam("agent_row")).values(
        last_report_at=bindparam("now"), last_heartbeat_at=bindparam("now"))


@lru_cache(maxsize=4096)
def _touch_both_statement(tenant_id: str) -> Update:
    # PostgreSQL runs a data-modifying WITH whether or not the statement reads it: the agent's and
    # the device's UPDATE in one statement, one round trip. (The rows are bound as device_row and
    # agent_row: a parameter named like a column, device_id, would become a SET of that column.)
    agent = _touch_agent_statement(tenant_id).returning(cast(Table, Agent.__table__).c.id).cte("touched_agent")
    return _touch_device_statement(tenant_id).add_cte(agent)


async def _touch(session: AsyncSession, device: Device, agent: Agent | None, now: datetime) -> bool:
    """Record an unchanged check-in: the device (and its agent) were seen and reported now. False
    (and the device untouched) when another report of the device committed since it was read."""
    connection = await session.connection()
    params = {"device_row": device.id, "previous_report": device.last_report_at, "now": now}
    if agent is not None and connection.dialect.name == "postgresql":
        result = await connection.execute(_touch_both_statement(device.tenant_id), {**params, "agent_row": agent.id})
    else:
        result = await connection.execute(_touch_device_statement(device.tenant_id), params)
        if agent is not None:
            await connection.execute(_touch_agent_statement(agent.tenant_id), {"agent_row": agent.id, "now": now})
    if agent is not None:
        for name in ("last_report_at", "last_heartbeat_at"):
            set_committed_value(agent, name, now)  # the loaded objects agree, without a second UPDATE
    if not result.rowcount:
        return False
    for name in ("last_seen", "last_report_at", "evaluated_at", "updated_at"):
        set_committed_value(device, name, now)
    return True


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


@lru_cache(maxsize=4096)
def _agent_context_statement(tenant_id: str) -> Select[Any]:
    statement = cast(Select[Any], select(Agent, Device, Tenant).join(Device, Device.id == Agent.device_id).join(
        Tenant, Tenant.id == Agent.tenant_id).where(Agent.id == bindparam("agent_row")))
    return scoped(scoped(statement, Agent, tenant_id), Device, tenant_id)


async def _load_agent_context(session: AsyncSession, principal: Principal) -> None:
    """The agent, its device and its tenant in one statement, unless authentication has loaded them
    into the session already (then the session.get calls of the report path issue no SQL at all)."""
    if principal.agent_id is None or session.identity_map.get(identity_key(Agent, principal.agent_id)) is not None:
        return
    rows = (await session.execute(_agent_context_statement(principal.tenant_id),
                                  {"agent_row": principal.agent_id})).all()
    session.info["report_rows"] = rows  # held for the request (the identity map is weak)


async def _agent_device(session: AsyncSession, principal: Principal, body: ReportBody, facts: Facts) -> Device:
    """An agent reports for the one device it is bound to, and nothing else."""
    await _load_agent_context(session, principal)
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


def _evaluation(device: Device, security: dict[str, Any] | None, policy: posture.Policy) -> posture.Evaluation:
    checks = posture.checks_from_security(security) if security is not None \
        else posture.base_checks(device.compliance_checks)
    return posture.evaluate(checks, policy, device.os_type, device.os_version)


def _new_agent_version(agent: Agent | None, body: ReportBody) -> str | None:
    return body.agent_version if agent is not None and body.agent_version not in (None, agent.agent_version) \
        else None


def _unchanged(device: Device, principal: Principal, body: ReportBody, facts: Facts, owner: str | None,
               agent: Agent | None, digests: Mapping[str, str], policy: posture.Policy) -> bool:
    """Nothing to write but the times: no field, data, agent version or evaluation changed."""
    return (live_unchanged(device, digests) and _new_agent_version(agent, body) is None
            and not _field_updates(device, principal, body, facts, owner)
            and not posture.changed(device, _evaluation(device, facts.payloads.get("security"), policy)))


def _plan_data(existing: Mapping[str, tuple[str, str]],
               digests: Mapping[str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """The types whose content changed, and the device's live_data after this report (a changed
    type's new version gets its id here)."""
    changed = [t for t in digests if existing.get(t, ("", ""))[1] != digests[t]]
    live = {t: [new_id("dd") if t in changed else existing[t][0], value] for t, value in digests.items()}
    return changed, live


def _add_versions(session: AsyncSession, device: Device, facts: Facts, changed: list[str],
                  live: Mapping[str, list[str]], now: datetime) -> None:
    for data_type in changed:
        row_id, value = live[data_type]
        session.add(DeviceData(id=row_id, tenant_id=device.tenant_id, device_id=device.id, data_type=data_type,
                               data=facts.payloads[data_type], digest=value, collected_at=now, last_seen_at=now))


async def _store_data(session: AsyncSession, device: Device, facts: Facts, digests: Mapping[str, str],
                      now: datetime) -> list[str]:
    """An existing device's report: confirm the unchanged data, add a version of the changed, keep
    live_data in step; returns the changed types."""
    # live_data names the newest versions of what the last report carried (every report that writes
    # data keeps it, under the device's lock on PostgreSQL, the one write lock on SQLite). A kind it
    # does not name may still have versions, and a device not reported since 0011 has none: then ask.
    live_data = device.live_data
    existing = {t: (entry[0], entry[1]) for t, entry in live_data.items()} \
        if live_data is not None and live_data.keys() >= digests.keys() \
        else await latest_digests(session, device.tenant_id, device.id)
    changed, live = _plan_data(existing, digests)
    seen = {existing[t][0]: now for t in digests if t not in changed}
    if device.live_data and device.last_report_at is not None:
        # The versions the last report carried were confirmed then (not in their rows: see live_data).
        for row_id, _ in device.live_data.values():
            seen.setdefault(row_id, device.last_report_at)
    await confirm_data(session, device.tenant_id, seen)
    _add_versions(session, device, facts, changed, live, now)
    device.live_data = live
    return changed


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
    agent = await session.get(Agent, principal.agent_id) if principal.agent_id else None  # already loaded
    if device is not None and _unchanged(device, principal, body, facts, owner, agent, digests, policy) \
            and await _touch(session, device, agent, now):
        # The common check-in: nothing changed. Plain UPDATEs, no unit-of-work flush. (When another
        # report of the device came first, the full path below reloads the device and decides again.)
        return to_read(device, None, now, offline_after), False

    changes: dict[str, dict[str, Any]] = {}
    security = facts.payloads.get("security")
    compliance_change: posture.Change | None
    if device is None:
        device = _new_device(principal, body, facts, owner, now)
        changed_types, device.live_data = _plan_data({}, digests)
        result = posture.evaluate(posture.checks_from_security(security), policy, device.os_type, device.os_version)
        compliance_change = posture.set_result(device, result, now)
        session.add(device)
        await session.flush()  # rows below refer to it, and no ORM relationship orders the inserts
        if compliance_change is not None:
            session.add(posture.history_row(device, now))
        _add_versions(session, device, facts, changed_types, device.live_data, now)
    else:
        await lock_device(session, device)
        # Data first: it reads the previous last_report_at, and flushes nothing of the device's edits.
        changed_types = await _store_data(session, device, facts, digests, now)
        for name, value in _field_updates(device, principal, body, facts, owner).items():
            changes[name] = {"old": _audit_value(getattr(device, name)), "new": _audit_value(value)}
            setattr(device, name, value)
        result = _evaluation(device, security, policy)
        new_version = _new_agent_version(agent, body)
        device.last_seen = now
        device.last_report_at = now
        compliance_change = posture.record(session, device, result, now)
        if agent is not None:
            agent.last_report_at = now
            agent.last_heartbeat_at = now
            if new_version is not None:
                agent.agent_version = new_version
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

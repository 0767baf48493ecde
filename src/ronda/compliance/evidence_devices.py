"""Evidence from device posture history (DeviceEvaluation rows) and the device inventory.

Posture history holds a row each time a device's result changes, so a row is in force from its
`evaluated_at` until the next row (or, for the latest, until the end of the period — but only while
the device keeps reporting: past `last_report_at + stale_after_days` it counts as unknown). One SQL
statement turns every row into the seconds of the period it covers, per check, and sums them per
device; a window over the rows also marks where each failing run began and ended, which gives every
exception its "since" and "until". Python only sums the per-device totals and formats exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, column, func, literal, literal_column, or_, select, true, type_coerce

from ronda.compliance.context import EvidenceContext
from ronda.compliance.types import Evidence, ExceptionItem, share_result
from ronda.core.tenancy import scoped, tenant_clause
from ronda.devices.models import Device, DeviceEvaluation
from ronda.devices.schemas import POSTURE_CHECKS

STATUS = "status"  # the overall result: compliant or not
FLAGS: tuple[str, ...] = (STATUS, *POSTURE_CHECKS)
DAY = 86400.0
MIN_SHORTFALL = 60.0  # seconds: less than a minute short is rounding, not an exception


@dataclass(frozen=True, slots=True)
class DevicePosture:
    device_id: str
    name: str
    observed: float  # seconds of the period the device had a result
    good: dict[str, float]  # seconds passing, per flag
    since: dict[str, datetime | None]  # start of the latest failing run, per flag
    until: dict[str, datetime | None]  # end of the latest failing run (None: still failing)
    stale_at: datetime | None  # when the device stopped reporting, if within the period


def _bit(value: Any, index: int) -> Any:
    return value.op("&")(1 << index)


async def posture_by_device(ctx: EvidenceContext) -> list[DevicePosture]:
    """Per device: seconds of the period observed and passing (per flag), and each flag's latest failing run.

    Times are seconds from the period's start (floats), so the per-row arithmetic is cheap; the six
    pass/fail flags travel as one bitmask so a single LAG carries them all."""
    d = ctx.dialect
    start = d.moment(ctx.start)
    length = (ctx.end - ctx.start).total_seconds()
    checks: Any = None
    if not d.sqlite:
        # PostgreSQL parses a `json` value again for every ->>; json_to_record reads it once per row.
        as_object = case((func.json_typeof(DeviceEvaluation.checks) == "object", DeviceEvaluation.checks),
                         else_=literal_column("'{}'::json"))
        checks = func.json_to_record(as_object).table_valued(
            *(column(check, String()) for check in POSTURE_CHECKS)).render_derived("chk", with_types=True)
    mask: Any = literal(0)
    check_bits: Any = literal(0)
    for index, flag in enumerate(FLAGS):
        if flag == STATUS:
            mask = mask + case((DeviceEvaluation.status == "compliant", 1 << index), else_=0)
            continue
        passing = (checks.c[flag] == "pass") if checks is not None else (
            DeviceEvaluation.checks[flag].as_string() == "pass")
        check_bits = check_bits + case((passing, 1 << index), else_=0)
    if checks is None:
        # SQLite parses the JSON once per json_extract: one call with every path answers the common
        # case (all five pass) with one parse; only the other rows read the checks one by one.
        every = type_coerce(func.json_extract(DeviceEvaluation.checks, *(f'$."{c}"' for c in POSTURE_CHECKS)),
                            String())
        all_pass = sum(1 << index for index, flag in enumerate(FLAGS) if flag != STATUS)
        check_bits = case((every == '["' + '","'.join("pass" for _ in POSTURE_CHECKS) + '"]', all_pass),
                          else_=check_bits)
    mask = mask + check_bits
    # Materialised: the JSON and the timestamps are read once per row, whatever the later levels reference.
    statement_rows = (
        select(
            DeviceEvaluation.device_id.label("device_id"),
            d.seconds(DeviceEvaluation.evaluated_at, start).label("ts"),
            mask.label("g"),
        )
        .where(tenant_clause(DeviceEvaluation, ctx.tenant_id), DeviceEvaluation.evaluated_at < d.moment(ctx.end))
    )
    if checks is not None:
        statement_rows = statement_rows.join(checks, true())
    rows = statement_rows.cte("posture_rows").prefix_with("MATERIALIZED")
    spans = select(
        rows.c.device_id, rows.c.ts, rows.c.g,
        func.lead(rows.c.ts).over(partition_by=rows.c.device_id, order_by=rows.c.ts).label("ts1"),
        func.lag(rows.c.g).over(partition_by=rows.c.device_id, order_by=rows.c.ts).label("pg"),
    ).subquery("spans")

    seg_start = d.greatest(spans.c.ts, 0.0)
    seg_end = d.least(func.coalesce(spans.c.ts1, length), length)
    observed = d.greatest(seg_end - seg_start, 0.0)
    latest = spans.c.ts1.is_(None)
    aggregates: list[Any] = [
        spans.c.device_id.label("device_id"),
        func.sum(observed).label("observed"),
        func.max(case((latest, spans.c.ts))).label("last_ts"),
        func.max(case((latest, spans.c.g))).label("last_g"),
    ]
    for index, flag in enumerate(FLAGS):
        g, p = _bit(spans.c.g, index), _bit(spans.c.pg, index)
        aggregates.append(func.sum(case((g != 0, observed), else_=0.0)).label(f"span_{flag}"))
        run_start = case((and_(g == 0, or_(spans.c.pg.is_(None), p != 0)), spans.c.ts))
        run_end = case((and_(g != 0, spans.c.pg.is_not(None), p == 0), spans.c.ts))
        aggregates.append(func.max(run_start).label(f"since_{flag}"))
        aggregates.append(func.max(run_end).label(f"until_{flag}"))
    per_device = select(*aggregates).group_by(spans.c.device_id).having(func.sum(observed) > 0).subquery("per_device")
    # Per device, not per row: the latest result counts as passing only until the device went stale
    # (no report for stale_after_days), so that tail is taken off the flags the latest row passes.
    stale_cut = (func.coalesce(d.seconds(Device.last_report_at, start), per_device.c.last_ts)
                 + ctx.policy.stale_after_days * DAY)
    stale_loss = d.greatest(length - d.greatest(d.greatest(per_device.c.last_ts, 0.0), stale_cut), 0.0)
    columns: list[Any] = [
        per_device.c.device_id, per_device.c.observed, stale_cut.label("stale_cut"),
        func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id).label("name"),
    ]
    for index, flag in enumerate(FLAGS):
        loss = case((_bit(per_device.c.last_g, index) != 0, stale_loss), else_=0.0)
        columns += [(per_device.c[f"span_{flag}"] - loss).label(f"good_{flag}"),
                    per_device.c[f"since_{flag}"], per_device.c[f"until_{flag}"]]
    statement = select(*columns).join(Device, Device.id == per_device.c.device_id)
    result = await ctx.session.execute(statement)
    out: list[DevicePosture] = []

    def moment(offset: Any) -> datetime | None:
        return None if offset is None else ctx.start + timedelta(seconds=round(float(offset), 3))

    for row in result.mappings():
        stale = row["stale_cut"]
        out.append(DevicePosture(
            device_id=row["device_id"], name=str(row["name"]), observed=float(row["observed"] or 0),
            good={flag: float(row[f"good_{flag}"] or 0) for flag in FLAGS},
            since={flag: moment(row[f"since_{flag}"]) for flag in FLAGS},
            until={flag: moment(row[f"until_{flag}"]) for flag in FLAGS},
            stale_at=moment(stale) if stale is not None and float(stale) < length else None,
        ))
    return out


CHECK_LABELS = {
    STATUS: "not compliant with the posture policy",
    "disk_encryption": "disk not encrypted",
    "firewall_enabled": "firewall off",
    "screen_lock_enabled": "screen lock off",
    "os_up_to_date": "operating system not up to date",
    "antivirus_enabled": "no active anti-malware",
}


def _posture_evidence(ctx: EvidenceContext, key: str, title: str, flag: str,
                      devices: list[DevicePosture]) -> Evidence:
    observed = sum(device.observed for device in devices)
    good = sum(device.good[flag] for device in devices)
    short = [device for device in devices if device.observed - device.good[flag] > MIN_SHORTFALL]
    items = [_exception(device, flag) for device in short]
    items.sort(key=lambda item: (item.until is not None, _moment_key(item.since), item.subject_name))
    result = share_result(good, observed)
    return Evidence(
        key=key, title=title, source="device posture history", result=result,
        passed=good / DAY, total=observed / DAY, unit="device-days",
        exceptions=items[: ctx.max_exceptions], exceptions_total=len(items),
        details={"devices": len(devices), "devices_short": len(short),
                 "devices_failing_at_end": sum(1 for item in items if item.until is None)},
        note="Share of device-days in the period with this result passing (unknown or stale counts as not passing).",
    )


def _moment_key(value: object) -> str:
    """Oldest first; an unknown start sorts first (it predates everything we know)."""
    return value.isoformat() if isinstance(value, datetime) else ""


def _exception(device: DevicePosture, flag: str) -> ExceptionItem:
    since, until = device.since[flag], device.until[flag]
    label = CHECK_LABELS[flag]
    if since is not None and (until is None or until < since):
        return ExceptionItem("device", device.device_id, device.name, label, since, None)
    if device.stale_at is not None:
        return ExceptionItem("device", device.device_id, device.name, "no report (stale)", device.stale_at, None)
    return ExceptionItem("device", device.device_id, device.name, label, since, until)


def _posture_query(key: str, title: str, flag: str) -> Any:
    async def query(ctx: EvidenceContext) -> Evidence:
        devices = await ctx.shared("posture", lambda: posture_by_device(ctx))
        return _posture_evidence(ctx, key, title, flag, devices)

    query.__name__ = f"evidence_{key}"
    return query


device_compliance = _posture_query("device_compliance", "Devices compliant with the posture policy", STATUS)
disk_encryption = _posture_query("disk_encryption", "Disk encryption on devices", "disk_encryption")
firewall = _posture_query("firewall", "Host firewall enabled on devices", "firewall_enabled")
screen_lock = _posture_query("screen_lock", "Screen lock enabled on devices", "screen_lock_enabled")
os_patching = _posture_query("os_patching", "Operating systems up to date", "os_up_to_date")
antivirus = _posture_query("antivirus", "Anti-malware active on devices", "antivirus_enabled")


async def asset_inventory(ctx: EvidenceContext) -> Evidence:
    """Devices seen in the period: each should have an owner and a known type."""
    d = ctx.dialect
    in_period = and_(Device.first_seen < d.moment(ctx.end), Device.last_seen >= d.moment(ctx.start))
    lacking = or_(Device.user_id.is_(None), Device.device_type.in_(("unknown", "")))
    base = scoped(select(Device.id), Device, ctx.tenant_id).where(in_period)
    counts = (await ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(case((lacking, 1), else_=0)), 0),
               func.coalesce(func.sum(case((Device.managed.is_(True), 1), else_=0)), 0))
        .select_from(Device).where(tenant_clause(Device, ctx.tenant_id), in_period)
    )).one()
    total, short, managed = int(counts[0]), int(counts[1]), int(counts[2])
    rows = (await ctx.session.execute(
        select(Device.id, func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id),
               Device.user_id, Device.device_type, Device.first_seen)
        .where(Device.id.in_(base.where(lacking).scalar_subquery()))
        .order_by(Device.first_seen, Device.id).limit(ctx.max_exceptions)
    )).all()
    items = []
    for device_id, name, owner, device_type, first_seen in rows:
        reasons = [text for text, missing in (("no owner", owner is None),
                                              ("type unknown", device_type in ("unknown", ""))) if missing]
        items.append(ExceptionItem("device", device_id, str(name), ", ".join(reasons), first_seen))
    return Evidence(
        key="asset_inventory", title="Devices inventoried with an owner and type", source="device inventory",
        result=share_result(total - short, total), passed=total - short, total=total, unit="devices",
        exceptions=items, exceptions_total=short, details={"devices_seen": total, "managed": managed},
        note="Devices seen during the period (by agents, scans or by hand).",
    )


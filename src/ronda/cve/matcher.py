"""Matching devices against the imported CVE ranges, set-based.

What a device runs comes from two places: its scanned open ports (a CPE name, or a banner such as
"OpenSSH_8.9p1") and its agent's latest software inventory (package names mapped to NVD's vendor
and product by catalog.py). Devices are processed in chunks: one query each for their ports and
software, the CPE rows of each (vendor, product) seen are loaded once per run through the
(vendor, product) index, and each distinct (vendor, product, version) is checked against its
candidate rows once, in Python (versions.py). The chunk's stored matches are then brought in line
with a diff: inserts for new matches, deletes for those gone, updates where the version changed.
New high or critical matches are returned for `cve.matched` events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import Table, Text, and_, bindparam, delete, func, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.cve import catalog
from ronda.cve.importer import split_cpe, unescape
from ronda.cve.models import CveCpe, CveMatch, CveRecord
from ronda.cve.repository import chunks, db_time, dialect_of, fast_insert
from ronda.cve.versions import Key, normalize, part_key
from ronda.devices.models import DeviceData, DevicePort

ALERT_SEVERITIES = frozenset({"high", "critical"})
PACKAGED_SOURCES = frozenset({"dpkg", "rpm", "pacman", "apk", "deb", "apt", "yum", "dnf", "zypper"})
# NVD names some products under two vendors over the years; match both.
ALIASES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("f5", "nginx"): (("f5", "nginx"), ("nginx", "nginx")),
    ("google", "chromium"): (("google", "chromium"), ("google", "chrome")),
}
_DEBIAN_REVISION = re.compile(r"-[0-9][0-9a-z.+~]*$")

MATCHES = cast(Table, CveMatch.__table__)
MATCH_COLUMNS = ("tenant_id", "device_id", "cve_id", "source", "cpe", "matched_version", "package", "port",
                 "first_seen", "last_seen")


@dataclass(frozen=True, slots=True)
class Installed:
    """One thing a device runs: what NVD calls it, its upstream version, and where we saw it."""

    vendor: str
    product: str
    version: str
    source: str  # scan | agent
    package: str | None = None
    port: int | None = None

    @property
    def cpe(self) -> str:
        return f"cpe:2.3:a:{self.vendor}:{self.product}:{self.version}:*:*:*:*:*:*:*"


@dataclass(frozen=True, slots=True)
class Range:
    cve_id: str
    exact: Key | None  # an exact version (with its update), or None for a range
    any_update: str | None  # an exact version whose update is "*": every update of it
    start_incl: Key | None
    start_excl: Key | None
    end_incl: Key | None
    end_excl: Key | None

    def covers(self, version: str, key: Key) -> bool:
        if self.any_update is not None:
            base = self.any_update
            return version == base or (version.startswith(base) and version[len(base):][:1].isalpha())
        if self.exact is not None:
            return key == self.exact
        if self.start_incl is not None and key < self.start_incl:
            return False
        if self.start_excl is not None and key <= self.start_excl:
            return False
        if self.end_incl is not None and key > self.end_incl:
            return False
        return not (self.end_excl is not None and key >= self.end_excl)


def _key(text: str | None) -> Key | None:
    return part_key(text.lower()) if text else None


def make_range(cve_id: str, version: str, update_: str, vsi: str | None, vse: str | None, vei: str | None,
               vee: str | None) -> Range | None:
    """The Range of one stored CPE row, or None when it cannot match a version ("-": not applicable)."""
    version = version.lower()
    update_ = (update_ or "*").lower()
    if version not in ("*", ""):
        if version == "-":
            return None
        if update_ == "*":
            return Range(cve_id, None, version, None, None, None, None)
        exact = version if update_ in ("-", "") else version + update_
        return Range(cve_id, part_key(exact), None, None, None, None, None)
    return Range(cve_id, None, None, _key(vsi), _key(vse), _key(vei), _key(vee))


class RangeIndex:
    """The CPE rows of each (vendor, product) a run meets, loaded once through the index."""

    def __init__(self) -> None:
        self._ranges: dict[tuple[str, str], list[Range]] = {}
        self._verdicts: dict[tuple[str, str, str], tuple[str, ...]] = {}

    async def load(self, session: AsyncSession, pairs: Iterable[tuple[str, str]]) -> None:
        for pair in sorted(set(pairs) - set(self._ranges)):
            rows = await session.execute(
                select(CveCpe.cve_id, CveCpe.version, CveCpe.version_update, CveCpe.version_start_including,
                       CveCpe.version_start_excluding, CveCpe.version_end_including, CveCpe.version_end_excluding)
                .where(CveCpe.vendor == pair[0], CveCpe.product == pair[1])
            )
            ranges = [r for r in (make_range(*row) for row in rows) if r is not None]
            self._ranges[pair] = ranges

    def cves(self, vendor: str, product: str, version: str) -> tuple[str, ...]:
        """The CVE ids whose ranges cover this version of this product (cached per triple)."""
        triple = (vendor, product, version)
        found = self._verdicts.get(triple)
        if found is None:
            key = part_key(version)
            hits: list[str] = []
            for pair in ALIASES.get((vendor, product), ((vendor, product),)):
                hits.extend(r.cve_id for r in self._ranges.get(pair, ()) if r.covers(version, key))
            found = self._verdicts[triple] = tuple(dict.fromkeys(hits))
        return found


# --- what devices run ------------------------------------------------------------------------------


def from_port(cpe: str | None, service: str | None, version: str | None, banner: str | None,
              port: int | None) -> Installed | None:
    """A scanned service as an Installed product: its CPE when the scanner named one, else its banner."""
    if cpe:
        parsed = parse_cpe(cpe)
        if parsed is not None:
            vendor, product, cpe_version = parsed
            chosen = cpe_version or normalize(version)
            if chosen:
                return Installed(vendor, product, chosen.lower(), "scan", service, port)
    for text in (version, banner):
        if text:
            found = catalog.product_of_banner(text)
            if found is not None:
                (vendor, product), raw = found
                upstream = normalize(raw)
                if upstream:
                    return Installed(vendor, product, upstream.lower(), "scan", service, port)
    return None


def parse_cpe(name: str) -> tuple[str, str, str | None] | None:
    """(vendor, product, version with update) of a CPE 2.3 name or 2.2 URI; version None when unspecified."""
    if name.startswith("cpe:2.3:"):
        parts = split_cpe(name)
        if len(parts) < 6:
            return None
        vendor, product, version = unescape(parts[3]), unescape(parts[4]), unescape(parts[5])
        update_ = unescape(parts[6]) if len(parts) > 6 else "*"
    elif name.startswith("cpe:/"):
        parts = name[5:].split(":")
        if len(parts) < 3:
            return None
        vendor, product = parts[1].lower(), parts[2].lower()
        version = parts[3].lower() if len(parts) > 3 and parts[3] else "*"
        update_ = parts[4].lower() if len(parts) > 4 and parts[4] else "*"
    else:
        return None
    if not vendor or not product or vendor in ("*", "-") or product in ("*", "-"):
        return None
    if version in ("*", "-", ""):
        return vendor, product, None
    if update_ not in ("*", "-", ""):
        version += update_
    return vendor, product, version


def installed_of(data: Any) -> list[Installed]:
    """The catalogue products of a software section (whatever list the entries sit in), each once per
    name and version. Tight on purpose: a re-match reads millions of entries, most of them unknown."""
    if isinstance(data, list):
        lists: list[Any] = [data]
    elif isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
    else:
        return []
    out: list[Installed] = []
    known = catalog.product_of
    for items in lists:
        for item in items:
            if type(item) is not dict:
                continue
            name = item.get("name") or item.get("display_name") or item.get("DisplayName")
            if type(name) is not str or known(name) is None:
                continue
            version = item.get("version") or item.get("DisplayVersion")
            source = item.get("source")
            found = from_package(name, version if type(version) is str else None,
                                 source if type(source) is str else None)
            if found is not None:
                out.append(found)
    return out


@lru_cache(maxsize=200_000)
def from_package(name: str, version: str | None, source: str | None) -> Installed | None:
    """An inventory entry as an Installed product, or None (cached: fleets share package versions)."""
    product = catalog.product_of(name)
    if product is None or not version:
        return None
    packaged = (source or "").lower() in PACKAGED_SOURCES or (
        source is None and name.lower() in catalog.PACKAGES and bool(_DEBIAN_REVISION.search(version)))
    upstream = normalize(version, packaged=packaged)
    if not upstream:
        return None
    return Installed(product[0], product[1], upstream.lower(), "agent", name[:200], None)


@dataclass(slots=True)
class DeviceInventory:
    tenant_id: str
    items: list[Installed] = field(default_factory=list)


async def inventories(session: AsyncSession, device_ids: Sequence[str]) -> dict[str, DeviceInventory]:
    """What each device runs, from its open ports and its latest software data (two queries)."""
    found: dict[str, DeviceInventory] = {}
    ports = await session.execute(
        select(DevicePort.device_id, DevicePort.tenant_id, DevicePort.cpe, DevicePort.service, DevicePort.version,
               DevicePort.banner, DevicePort.port)
        .where(DevicePort.device_id.in_(device_ids), DevicePort.state == "open")
        .where((DevicePort.cpe.is_not(None)) | (DevicePort.version.is_not(None)) | (DevicePort.banner.is_not(None)))
    )
    for device_id, tenant_id, cpe, service, version, banner, port in ports:
        item = from_port(cpe, service, version, banner, port)
        if item is not None:
            found.setdefault(device_id, DeviceInventory(tenant_id)).items.append(item)
    latest = (
        select(DeviceData.device_id, func.max(DeviceData.collected_at).label("collected_at"))
        .where(DeviceData.device_id.in_(device_ids), DeviceData.data_type == "software")
        .group_by(DeviceData.device_id).subquery()
    )
    software = await session.execute(
        select(DeviceData.device_id, DeviceData.tenant_id, type_coerce(DeviceData.data, Text))
        .join(latest, and_(DeviceData.device_id == latest.c.device_id,
                           DeviceData.collected_at == latest.c.collected_at))
        .where(DeviceData.data_type == "software")
    )
    for device_id, tenant_id, text in software:
        try:
            data = orjson.loads(text) if isinstance(text, str | bytes) else text
        except orjson.JSONDecodeError:
            continue
        items = installed_of(data)
        if items:
            found.setdefault(device_id, DeviceInventory(tenant_id)).items.extend(items)
    return found


# --- one chunk of devices ----------------------------------------------------------------------------


@dataclass(slots=True)
class ChunkResult:
    inserted: int = 0
    deleted: int = 0
    updated: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)  # new high/critical matches, with tenant_id
    alerts_total: int = 0  # how many there were (alerts holds at most the limit)


async def match_chunk(session: AsyncSession, index: RangeIndex, device_ids: Sequence[str], now: datetime,
                      *, alert_limit: int) -> ChunkResult:
    """Recompute and store the matches of these devices."""
    inventory = await inventories(session, device_ids)
    pairs: set[tuple[str, str]] = set()
    for inv in inventory.values():
        for item in inv.items:
            pairs.update(ALIASES.get((item.vendor, item.product), ((item.vendor, item.product),)))
    await index.load(session, pairs)
    desired: dict[tuple[str, str, str], tuple[str, Installed]] = {}
    for device_id, inv in inventory.items():
        for item in inv.items:
            for cve_id in index.cves(item.vendor, item.product, item.version):
                desired.setdefault((device_id, cve_id, item.source), (inv.tenant_id, item))
    existing: dict[tuple[str, str, str], tuple[int, str, str]] = {}
    connection = await session.connection()
    for part in chunks(list(device_ids)):
        # Plain driver rows: a chunk holds up to a few hundred thousand matches.
        statement = select(CveMatch.id, CveMatch.device_id, CveMatch.cve_id, CveMatch.source, CveMatch.cpe,
                           CveMatch.matched_version).where(CveMatch.device_id.in_(part))
        rows = await connection.execute(statement)
        for match_id, device_id, cve_id, source, cpe, version in rows:
            existing[(device_id, cve_id, source)] = (match_id, cpe, version)
    result = ChunkResult()
    gone = [value[0] for key, value in existing.items() if key not in desired]
    for part in chunks(gone):
        await session.execute(delete(MATCHES).where(MATCHES.c.id.in_(part)))
    result.deleted = len(gone)
    fresh = [(key, value) for key, value in desired.items() if key not in existing]
    if fresh:
        dialect = await dialect_of(session)
        stamp = db_time(dialect, now)
        await fast_insert(session, MATCHES, MATCH_COLUMNS, [
            (tenant_id, key[0], key[1], key[2], item.cpe[:300], item.version[:100], item.package, item.port, stamp,
             stamp)
            for key, (tenant_id, item) in fresh
        ])
    result.inserted = len(fresh)
    changed = [{"m_id": existing[key][0], "m_cpe": item.cpe[:300], "m_version": item.version[:100],
                "m_package": item.package, "m_port": item.port}
               for key, (_, item) in desired.items()
               if key in existing and (existing[key][1], existing[key][2]) != (item.cpe[:300], item.version[:100])]
    if changed:
        await session.execute(
            update(MATCHES).where(MATCHES.c.id == bindparam("m_id")).values(
                cpe=bindparam("m_cpe"), matched_version=bindparam("m_version"), package=bindparam("m_package"),
                port=bindparam("m_port"), last_seen=now),
            changed,
        )
    result.updated = len(changed)
    if fresh:
        result.alerts, result.alerts_total = await _alerts(session, fresh, alert_limit)
    return result


async def _alerts(session: AsyncSession, fresh: list[tuple[tuple[str, str, str], tuple[str, Installed]]],
                  limit: int) -> tuple[list[dict[str, Any]], int]:
    """`cve.matched` payloads for the new matches whose CVE is high or critical (at most `limit`)."""
    cve_ids = sorted({key[1] for key, _ in fresh})
    severity: dict[str, tuple[str | None, float | None]] = {}
    for part in chunks(cve_ids):
        rows = await session.execute(select(CveRecord.id, CveRecord.severity, CveRecord.cvss_score)
                                     .where(CveRecord.id.in_(part), CveRecord.severity.in_(ALERT_SEVERITIES)))
        severity.update({row[0]: (row[1], row[2]) for row in rows})
    out: list[dict[str, Any]] = []
    total = 0
    for (device_id, cve_id, source), (tenant_id, item) in fresh:
        if cve_id in severity:
            total += 1
            if len(out) < limit:
                level, score = severity[cve_id]
                out.append({"tenant_id": tenant_id, "device_id": device_id, "cve_id": cve_id, "severity": level,
                            "cvss_score": score, "cpe": item.cpe, "source": source})
    return out, total

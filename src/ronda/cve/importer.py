"""Reading NVD CVE JSON (the 2.0 API / feed format, plain or gzip) into rows, streaming.

A file is `{"resultsPerPage", "startIndex", "totalResults", "format": "NVD_CVE", "version": "2.0",
"timestamp", "vulnerabilities": [{"cve": {...}}, ...]}`. The records are parsed one at a time with
ijson's C backend (a 250,000-record file never sits in memory), checked, and handed on in batches;
a problem raises FeedError naming the file and where: the record (`vulnerabilities[1234]
(CVE-2024-6387)`) and field for bad content, the byte offset for broken JSON. The caller writes
each file in one transaction, so a bad file leaves nothing behind.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import ijson  # type: ignore[import-untyped]

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
SEVERITIES = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE"}
BATCH = 2000
READ_SIZE = 1 << 20
MAX_RECORD = 64 << 20  # no NVD record comes near this; beyond it the file is broken
VULNERABILITIES = re.compile(r'"vulnerabilities"\s*:\s*\[')
MAX_TEXT = 20_000


class FeedError(Exception):
    """A feed file that cannot be imported; str() is one line: file, position, reason."""

    def __init__(self, file: str, position: str, reason: str) -> None:
        super().__init__(f"{file}: {position}: {reason}")
        self.file, self.position, self.reason = file, position, reason


@dataclass(slots=True)
class CpeRow:
    part: str
    vendor: str
    product: str
    version: str
    version_update: str
    criteria: str
    version_start_including: str | None = None
    version_start_excluding: str | None = None
    version_end_including: str | None = None
    version_end_excluding: str | None = None


@dataclass(slots=True)
class ParsedCve:
    id: str
    source_identifier: str | None
    vuln_status: str | None
    description: str
    published: datetime | None
    last_modified: datetime | None
    cvss_score: float | None
    severity: str | None
    cvss_v31_score: float | None = None
    cvss_v31_severity: str | None = None
    cvss_v31_vector: str | None = None
    cvss_v40_score: float | None = None
    cvss_v40_severity: str | None = None
    cvss_v40_vector: str | None = None
    references: list[dict[str, Any]] = field(default_factory=list)
    weaknesses: list[str] = field(default_factory=list)
    cpes: list[CpeRow] = field(default_factory=list)

    def record_row(self, imported_at: datetime) -> dict[str, Any]:
        return {
            "id": self.id, "source_identifier": self.source_identifier, "vuln_status": self.vuln_status,
            "description": self.description, "cvss_score": self.cvss_score, "severity": self.severity,
            "cvss_v31_score": self.cvss_v31_score, "cvss_v31_severity": self.cvss_v31_severity,
            "cvss_v31_vector": self.cvss_v31_vector, "cvss_v40_score": self.cvss_v40_score,
            "cvss_v40_severity": self.cvss_v40_severity, "cvss_v40_vector": self.cvss_v40_vector,
            "published": self.published, "last_modified": self.last_modified, "references": self.references,
            "weaknesses": self.weaknesses, "imported_at": imported_at,
        }


class _Counting:
    """A binary reader that counts the bytes handed to the parser (for error positions)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.consumed += len(data)
        return data


def _open(path: Path) -> IO[bytes]:
    handle = path.open("rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        handle.close()
        return cast(IO[bytes], gzip.open(path, "rb"))
    return handle


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_header(path: Path, name: str) -> int | None:
    """Check the top-level `format` and `version` (NVD writes them before `vulnerabilities`);
    return `totalResults` when the file states it."""
    seen: dict[str, Any] = {}
    with _open(path) as raw:
        reader = _Counting(raw)
        try:
            for prefix, event, value in ijson.parse(reader):
                if prefix == "" and event == "start_map":
                    continue
                if prefix == "" and event not in ("map_key", "end_map"):
                    raise FeedError(name, "byte 0", "the file is not a JSON object")
                if prefix in ("format", "version", "totalResults") and event in ("string", "number"):
                    seen[prefix] = value
                if prefix == "vulnerabilities" and event == "start_array":
                    break
            else:
                raise FeedError(name, "top level", "no 'vulnerabilities' array")
        except FeedError:
            raise
        except (ijson.JSONError, ijson.IncompleteJSONError) as exc:
            raise FeedError(name, f"near byte {reader.consumed}", f"invalid JSON ({_short(exc)})") from None
        except (OSError, EOFError) as exc:
            raise FeedError(name, f"near byte {reader.consumed}", f"unreadable ({_short(exc)})") from None
    if seen.get("format") != "NVD_CVE":
        raise FeedError(name, "top level 'format'", f"expected \"NVD_CVE\", found {seen.get('format')!r}")
    if str(seen.get("version")) != "2.0":
        raise FeedError(name, "top level 'version'", f"expected \"2.0\", found {seen.get('version')!r}")
    total = seen.get("totalResults")
    return int(total) if isinstance(total, int | float) and not isinstance(total, bool) else None


def read_feed(path: Path, name: str | None = None) -> Iterator[list[ParsedCve]]:
    """Yield the file's records, parsed and checked, in batches of BATCH."""
    label = name or path.name
    check_header(path, label)
    batch: list[ParsedCve] = []
    for index, item in _elements(path, label):
        batch.append(parse_item(item, label, index))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _Text:
    """The decompressed file as text, read in chunks, with line/column positions for errors."""

    def __init__(self, raw: IO[bytes], label: str) -> None:
        self.raw = raw
        self.label = label
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line of buf[0]
        self.column = 1  # column of buf[0]

    def more(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.raw.read(READ_SIZE)
            text = self.decoder.decode(data, final=not data)
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise FeedError(self.label, self.where(len(self.buf)), f"unreadable ({_short(exc)})") from None
        if not data:
            self.eof = True
        if self.pos > READ_SIZE:  # drop what was parsed, keeping the line count
            dropped = self.buf[:self.pos]
            newlines = dropped.count("\n")
            self.column = len(dropped) - dropped.rfind("\n") if newlines else self.column + len(dropped)
            self.line += newlines
            self.buf, self.pos = self.buf[self.pos:], 0
        self.buf += text
        return bool(data)

    def where(self, offset: int) -> str:
        before = self.buf[:offset]
        newlines = before.count("\n")
        column = len(before) - before.rfind("\n") if newlines else self.column + len(before)
        return f"line {self.line + newlines} column {column}"

    def skip_space(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""


def _elements(path: Path, label: str) -> Iterator[tuple[int, Any]]:
    """Each element of the top-level `vulnerabilities` array, decoded one at a time with the json
    module's C scanner (its raw_decode reads one value and says where it ended)."""
    decoder = json.JSONDecoder()
    with _open(path) as raw:
        text = _Text(raw, label)
        while True:  # the array's start: check_header saw only scalar keys before it
            found = VULNERABILITIES.search(text.buf)
            if found:
                text.pos = found.end()
                break
            if not text.more():
                raise FeedError(label, "top level", "no 'vulnerabilities' array")
        index = 0
        while True:
            char = text.skip_space()
            if char == "]":
                text.pos += 1
                break
            if char == "":
                raise FeedError(label, text.where(text.pos), f"the file ends inside vulnerabilities[{index}] "
                                                             "(truncated?)")
            if index:
                if char != ",":
                    raise FeedError(label, text.where(text.pos), f"expected ',' or ']' after vulnerabilities"
                                                                 f"[{index - 1}], found {char!r}")
                text.pos += 1
                text.skip_space()
            while True:
                try:
                    item, end = decoder.raw_decode(text.buf, text.pos)
                    break
                except json.JSONDecodeError as exc:
                    # Most likely the record goes on in the next chunk; a record larger than any NVD
                    # record is a broken file.
                    if len(text.buf) - text.pos < MAX_RECORD and text.more():
                        continue
                    where = text.where(exc.pos)
                    if text.eof and not text.buf.rstrip().endswith("}"):
                        reason = f"the file ends inside vulnerabilities[{index}] (truncated?): {exc.msg}"
                    else:
                        reason = f"invalid JSON in vulnerabilities[{index}]: {exc.msg}"
                    raise FeedError(label, where, reason) from None
            text.pos = end
            yield index, item
            index += 1
        if text.skip_space() not in ("}", ","):
            raise FeedError(label, text.where(text.pos), "the file ends after the 'vulnerabilities' array (truncated?)")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split("(right here)")[0].split())  # yajl appends an ASCII-art pointer
    return text[:160] or type(exc).__name__


# --- one record ------------------------------------------------------------------------------------


def parse_item(item: Any, file: str, index: int) -> ParsedCve:
    where = f"vulnerabilities[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("cve"), dict):
        raise FeedError(file, where, "expected an object with a 'cve' object")
    cve: dict[str, Any] = item["cve"]
    cve_id = cve.get("id")
    if not isinstance(cve_id, str) or not CVE_ID.match(cve_id):
        raise FeedError(file, where, f"'id' is not a CVE id: {cve_id!r}")
    where = f"{where} ({cve_id})"

    def fail(path: str, reason: str) -> FeedError:
        return FeedError(file, f"{where} {path}", reason)

    descriptions = cve.get("descriptions") or []
    if not isinstance(descriptions, list):
        raise fail("descriptions", "must be a list")
    description = next((d.get("value") for d in descriptions
                        if isinstance(d, dict) and d.get("lang") == "en" and isinstance(d.get("value"), str)), "")
    parsed = ParsedCve(
        id=cve_id,
        source_identifier=_text(cve.get("sourceIdentifier"), 200),
        vuln_status=_text(cve.get("vulnStatus"), 40),
        description=(description or "")[:MAX_TEXT],
        published=_when(cve.get("published"), fail, "published"),
        last_modified=_when(cve.get("lastModified"), fail, "lastModified"),
        cvss_score=None,
        severity=None,
    )
    _metrics(parsed, cve.get("metrics"), fail)
    parsed.references = _references(cve.get("references"), fail)
    parsed.weaknesses = _weaknesses(cve.get("weaknesses"))
    parsed.cpes = _configurations(cve.get("configurations"), fail)
    return parsed


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _when(value: Any, fail: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(path, f"not a date: {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(path, f"not a date: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pick(entries: Any, fail: Any, path: str) -> tuple[float, str, str | None] | None:
    """(score, severity, vector) of a metric list: the Primary entry, else the first."""
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise fail(path, "must be a list")
    chosen = None
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("cvssData"), dict):
            raise fail(f"{path}[{position}]", "expected an object with 'cvssData'")
        if chosen is None or (entry.get("type") == "Primary" and chosen[1].get("type") != "Primary"):
            chosen = (position, entry)
    if chosen is None:
        return None
    position, entry = chosen
    data = entry["cvssData"]
    score = data.get("baseScore")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= float(score) <= 10.0:
        raise fail(f"{path}[{position}].cvssData.baseScore", f"must be a number from 0.0 to 10.0, found {score!r}")
    severity = data.get("baseSeverity", entry.get("baseSeverity"))
    if severity is None:
        severity = _severity_of(float(score))
    if not isinstance(severity, str) or severity.upper() not in SEVERITIES:
        raise fail(f"{path}[{position}].cvssData.baseSeverity", f"unknown severity {severity!r}")
    vector = data.get("vectorString")
    return float(score), severity.lower(), vector[:400] if isinstance(vector, str) else None


def _severity_of(score: float) -> str:
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    return "LOW" if score > 0 else "NONE"


def _metrics(parsed: ParsedCve, metrics: Any, fail: Any) -> None:
    if metrics is None:
        return
    if not isinstance(metrics, dict):
        raise fail("metrics", "must be an object")
    v31 = _pick(metrics.get("cvssMetricV31"), fail, "metrics.cvssMetricV31")
    v40 = _pick(metrics.get("cvssMetricV40"), fail, "metrics.cvssMetricV40")
    if v31:
        parsed.cvss_v31_score, parsed.cvss_v31_severity, parsed.cvss_v31_vector = v31
    if v40:
        parsed.cvss_v40_score, parsed.cvss_v40_severity, parsed.cvss_v40_vector = v40
    best = v31 or v40 or _pick(metrics.get("cvssMetricV30"), fail, "metrics.cvssMetricV30") \
        or _pick(metrics.get("cvssMetricV2"), fail, "metrics.cvssMetricV2")
    if best:
        parsed.cvss_score, parsed.severity = best[0], best[1]


def _references(value: Any, fail: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail("references", "must be a list")
    out = []
    for reference in value:
        if isinstance(reference, dict) and isinstance(reference.get("url"), str):
            tags = reference.get("tags")
            out.append({"url": reference["url"][:2000], "source": _text(reference.get("source"), 200),
                        "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []})
    return out


def _weaknesses(value: Any) -> list[str]:
    found: list[str] = []
    for weakness in value if isinstance(value, list) else []:
        for description in (weakness.get("description") or []) if isinstance(weakness, dict) else []:
            text = description.get("value") if isinstance(description, dict) else None
            if isinstance(text, str) and text not in found:
                found.append(text)
    return found


def _configurations(value: Any, fail: Any) -> list[CpeRow]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail("configurations", "must be a list")
    rows: list[CpeRow] = []
    seen: set[tuple[Any, ...]] = set()
    for c, configuration in enumerate(value):
        nodes = configuration.get("nodes") if isinstance(configuration, dict) else None
        if not isinstance(nodes, list):
            raise fail(f"configurations[{c}].nodes", "must be a list")
        for n, node in enumerate(nodes):
            matches = node.get("cpeMatch") if isinstance(node, dict) else None
            if not isinstance(matches, list):
                raise fail(f"configurations[{c}].nodes[{n}].cpeMatch", "must be a list")
            for m, match in enumerate(matches):
                path = f"configurations[{c}].nodes[{n}].cpeMatch[{m}]"
                row = _cpe_row(match, fail, path)
                # Only what is vulnerable is matched; a "running on" platform (vulnerable: false) is not.
                if row is not None and match.get("vulnerable") is True:
                    identity = (row.criteria, row.version_start_including, row.version_start_excluding,
                                row.version_end_including, row.version_end_excluding)
                    if identity not in seen:
                        seen.add(identity)
                        rows.append(row)
    return rows


def _cpe_row(match: Any, fail: Any, path: str) -> CpeRow | None:
    if not isinstance(match, dict):
        raise fail(path, "must be an object")
    criteria = match.get("criteria")
    if not isinstance(criteria, str) or not criteria.startswith("cpe:2.3:"):
        raise fail(f"{path}.criteria", f"not a CPE 2.3 name: {criteria!r}")
    if not isinstance(match.get("vulnerable"), bool):
        raise fail(f"{path}.vulnerable", "must be true or false")
    parts = split_cpe(criteria)
    if len(parts) != 13:
        raise fail(f"{path}.criteria", f"a CPE 2.3 name has 13 parts, found {len(parts)}: {criteria!r}")
    bounds = {}
    for key in ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding", "versionEndExcluding"):
        bound = match.get(key)
        if bound is not None and (not isinstance(bound, str) or not bound.strip()):
            raise fail(f"{path}.{key}", f"not a version: {bound!r}")
        bounds[key] = bound[:100] if isinstance(bound, str) else None
    return CpeRow(
        part=parts[2][:1], vendor=unescape(parts[3])[:150], product=unescape(parts[4])[:200],
        version=unescape(parts[5])[:100], version_update=unescape(parts[6])[:100], criteria=criteria[:600],
        version_start_including=bounds["versionStartIncluding"],
        version_start_excluding=bounds["versionStartExcluding"],
        version_end_including=bounds["versionEndIncluding"], version_end_excluding=bounds["versionEndExcluding"],
    )


def split_cpe(name: str) -> list[str]:
    """A CPE 2.3 formatted string's components (colons escaped with a backslash stay inside)."""
    if "\\" not in name:
        return name.split(":")
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in name:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(component: str) -> str:
    return re.sub(r"\\(.)", r"\1", component).lower() if "\\" in component else component.lower()

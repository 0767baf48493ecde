"""JSON and CSV renderings of the report documents."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson

from ronda.core.pagination import csv_cell

COMPLIANCE_COLUMNS = (
    "record_type", "framework", "control_id", "control_title", "theme", "result", "evidence_key", "evidence_title",
    "passed", "total", "unit", "share", "exceptions_total", "subject_type", "subject_id", "subject_name", "reason",
    "since", "until",
)
NETWORK_COLUMNS = (
    "device_id", "name", "ip", "mac", "vendor", "device_type", "os", "is_online", "managed", "port", "protocol",
    "service", "version", "risk", "risk_reason", "cleartext", "first_seen", "last_seen",
)


def render_json(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def _csv(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue().encode("utf-8")


def compliance_csv(document: dict[str, Any]) -> bytes:
    """One `control` row per control, one `evidence` row per evidence item it uses, and one
    `exception` row per exception under that evidence (filter on record_type in a spreadsheet)."""
    framework = document["report"]["framework"]
    evidence = document["evidence"]

    def rows() -> Iterable[dict[str, Any]]:
        for control in document["controls"]:
            base = {"framework": framework, "control_id": control["id"], "control_title": control["title"],
                    "theme": control["theme"]}
            yield {**base, "record_type": "control", "result": control["result"],
                   "evidence_key": ";".join(control["evidence_keys"]), "passed": control["evidence_passed"],
                   "total": control["evidence_total"], "exceptions_total": control["exceptions_total"]}
            for key in control["evidence_keys"]:
                item = evidence[key]
                row = {**base, "evidence_key": key, "evidence_title": item["title"]}
                yield {**row, "record_type": "evidence", "result": item["result"], "passed": item["passed"],
                       "total": item["total"], "unit": item["unit"], "share": item["share"],
                       "exceptions_total": item["exceptions_total"]}
                for exception in item["exceptions"]:
                    yield {**row, "record_type": "exception", **exception}

    return _csv(COMPLIANCE_COLUMNS, rows())


def network_csv(document: dict[str, Any]) -> bytes:
    """One row per open port of each device (a device without open ports: one row, port empty)."""

    def rows() -> Iterable[dict[str, Any]]:
        for device in document["inventory"]:
            base = {"device_id": device["id"], **{k: device[k] for k in (
                "name", "ip", "mac", "vendor", "device_type", "os", "is_online", "managed")}}
            for port in device["ports"] or [{}]:
                yield {**base, **port}

    return _csv(NETWORK_COLUMNS, rows())

"""Feed files for the CVE tests, built around the real NVD records in fixtures/ (see its README)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
OPENSSH = ("CVE-2023-38408", "CVE-2023-48795", "CVE-2023-51385", "CVE-2024-6387", "CVE-2024-6409")


def record(cve_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{cve_id}.json").read_text())
    return data


def document(records: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """The NVD 2.0 API / feed wrapper around CVE records, as NVD writes it."""
    body: dict[str, Any] = {"resultsPerPage": len(records), "startIndex": 0, "totalResults": len(records),
                            "format": "NVD_CVE", "version": "2.0", "timestamp": "2024-08-23T10:00:00.000"}
    body.update(top)
    body["vulnerabilities"] = [{"cve": r} for r in records]
    return body


def write_feed(path: Path, records: list[dict[str, Any]] | None = None, *, gz: bool = False, **top: Any) -> Path:
    text = json.dumps(document([record(i) for i in OPENSSH] if records is None else records, **top), indent=1)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def renamed(cve_id: str, new_id: str, product: str = "ronda_test:openssh_copy") -> dict[str, Any]:
    """A real record under a test-only id whose CPEs name a test-only product, so a test owns the rows
    it checks and never adds matches to devices of other tests."""
    text = json.dumps(record(cve_id)).replace("cpe:2.3:a:openbsd:openssh:", f"cpe:2.3:a:{product}:")
    data: dict[str, Any] = json.loads(text)
    data["id"] = new_id
    return data

"""Tenant filters in SQL are written in one place, core/tenancy.py (scoped / tenant_clause).

A query that compares a model's tenant_id itself bypasses that choke point: its check that a tenant
is present, and the one place a reviewer has to read. This test reads the source and names any."""

from __future__ import annotations

import re
from pathlib import Path

import ronda

SOURCE = Path(ronda.__file__).resolve().parent
# `Model.tenant_id == …` (a column expression) or `filter_by(tenant_id=…)`; joins between two
# tables' tenant_id columns (`A.tenant_id == B.tenant_id`) are not tenant filters.
DIRECT = re.compile(r"\b[A-Z]\w*\.tenant_id\s*==\s*(?![A-Z]\w*\.tenant_id\b)|filter_by\([^)]*\btenant_id\s*=")


def test_no_query_filters_tenants_by_hand() -> None:
    offenders = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path.name != "tenancy.py" and "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if DIRECT.search(line)
    ]
    assert not offenders, "use core.tenancy.scoped / tenant_clause:\n" + "\n".join(offenders)

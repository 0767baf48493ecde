"""`ronda cve import` end to end, as a separate process against the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from ronda.core.db import create_engine, create_session_factory
from ronda.cve.models import CveImport, CveRecord
from tests.cve.feeds import renamed, write_feed

RONDA = [sys.executable, "-m", "ronda.cli"]


def run(args: list[str], database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RONDA_")}
    env.update({"RONDA_DATA_DIR": str(tmp_path / "var"), "RONDA_DATABASE_URL": database_url})
    return subprocess.run(RONDA + args, env=env, capture_output=True, text=True, timeout=120, check=False)


def stored(database_url: str, *cve_ids: str) -> dict[str, float | None]:
    async def read() -> dict[str, float | None]:
        engine = create_engine(database_url)
        try:
            async with create_session_factory(engine)() as session:
                found = {}
                for cve_id in cve_ids:
                    row = await session.get(CveRecord, cve_id)
                    if row is not None:
                        found[cve_id] = row.cvss_score
                return found
        finally:
            await engine.dispose()

    return asyncio.run(read())


def imports_named(database_url: str, name: str) -> int:
    async def read() -> int:
        from sqlalchemy import func, select

        engine = create_engine(database_url)
        try:
            async with create_session_factory(engine)() as session:
                return int(await session.scalar(
                    select(func.count()).select_from(CveImport).where(CveImport.file_name == name)) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_cli_imports_plain_and_gzip_files(migrated: str, tmp_path: Path) -> None:
    plain = write_feed(tmp_path / "cli-a.json", [renamed("CVE-2024-6387", "CVE-2097-6387")])
    packed = write_feed(tmp_path / "cli-b.json.gz", [renamed("CVE-2023-38408", "CVE-2097-38408")], gz=True)
    result = run(["cve", "import", str(plain), str(packed)], migrated, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cli-a.json: 1 records, 1 new, 0 updated, 0 unchanged" in result.stdout
    assert "cli-b.json.gz: 1 records, 1 new" in result.stdout
    assert stored(migrated, "CVE-2097-6387", "CVE-2097-38408") == {"CVE-2097-6387": 8.1, "CVE-2097-38408": 9.8}
    again = run(["cve", "import", str(plain)], migrated, tmp_path)
    assert again.returncode == 0 and "0 new, 0 updated, 1 unchanged" in again.stdout


def test_cli_reports_a_bad_file_with_its_position_and_imports_nothing_of_it(migrated: str, tmp_path: Path) -> None:
    bad = renamed("CVE-2024-6387", "CVE-2097-0002")
    bad["metrics"]["cvssMetricV31"][0]["cvssData"]["baseScore"] = "high"
    path = write_feed(tmp_path / "cli-bad.json", [renamed("CVE-2023-51385", "CVE-2097-0001"), bad])
    result = run(["cve", "import", str(path)], migrated, tmp_path)
    assert result.returncode == 2
    first = result.stderr.strip().splitlines()[0]
    assert first == ("error: cli-bad.json: vulnerabilities[1] (CVE-2097-0002) metrics.cvssMetricV31[0].cvssData"
                     ".baseScore: must be a number from 0.0 to 10.0, found 'high'")
    assert "nothing of cli-bad.json was imported" in result.stderr
    assert stored(migrated, "CVE-2097-0001", "CVE-2097-0002") == {}
    assert imports_named(migrated, "cli-bad.json") == 0

    truncated = tmp_path / "cli-cut.json"
    truncated.write_text(path.read_text()[:1500])
    cut = run(["cve", "import", str(truncated)], migrated, tmp_path)
    assert cut.returncode == 2 and cut.stderr.startswith("error: cli-cut.json: line ")
    assert "(truncated?)" in cut.stderr
    missing = run(["cve", "import", str(tmp_path / "nope.json")], migrated, tmp_path)
    assert missing.returncode == 2 and "nope.json: no such file" in missing.stderr

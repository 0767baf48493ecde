"""Importing NVD 2.0 files: the real OpenSSH records (plain and gzip), updates by lastModified, and
malformed files refused whole with the file and position named."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ronda.cve.importer import FeedError
from ronda.cve.models import CveCpe, CveImport, CveRecord
from ronda.cve.service import import_file
from tests.conftest import Factory
from tests.cve.feeds import OPENSSH, record, renamed, write_feed

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def stored(factory: Factory, cve_id: str) -> CveRecord | None:
    async with factory.runtime.sessions() as session:
        found: CveRecord | None = await session.get(CveRecord, cve_id)
        return found


async def cpe_rows(factory: Factory, cve_id: str) -> list[CveCpe]:
    async with factory.runtime.sessions() as session:
        return list((await session.scalars(select(CveCpe).where(CveCpe.cve_id == cve_id).order_by(CveCpe.id))).all())


@pytest.mark.parametrize("gz", [False, True])
async def test_imports_the_real_openssh_records(factory: Factory, tmp_path: Path, gz: bool) -> None:
    path = write_feed(tmp_path / ("openssh.json.gz" if gz else "openssh.json"), gz=gz)
    result = await import_file(factory.runtime.sessions, path)
    assert result.records == 5
    assert result.created + result.updated + result.skipped == 5

    regression = await stored(factory, "CVE-2024-6387")
    assert regression is not None
    assert regression.description.startswith("A security regression (CVE-2006-5051) was discovered in OpenSSH")
    assert (regression.cvss_score, regression.severity) == (8.1, "high")
    assert regression.cvss_v31_vector == "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert regression.cvss_v40_score is None
    assert regression.published is not None and regression.published.isoformat().startswith("2024-07-01T13:15:06")
    assert len(regression.references) == 50
    assert regression.references[-1]["url"] == "https://www.theregister.com/2024/07/01/regresshion_openssh/"
    assert regression.weaknesses == ["CWE-362", "CWE-364"]
    ranges = [r for r in await cpe_rows(factory, "CVE-2024-6387") if r.product == "openssh"]
    assert [(r.version, r.version_update, r.version_start_including, r.version_end_excluding) for r in ranges] == [
        ("*", "*", None, "4.4"), ("*", "*", "8.6", "9.8"), ("4.4", "-", None, None), ("8.5", "p1", None, None),
        ("9.8", "-", None, None),
    ]
    # Only a Secondary v3.1 metric: it is used. No metrics at all: no score.
    second = await stored(factory, "CVE-2024-6409")
    assert second is not None and (second.cvss_score, second.severity) == (7.0, "high")
    terrapin = await stored(factory, "CVE-2023-48795")
    assert terrapin is not None and terrapin.cvss_score is None and terrapin.severity is None
    agent = await stored(factory, "CVE-2023-38408")
    assert agent is not None and (agent.cvss_score, agent.severity) == (9.8, "critical")
    async with factory.runtime.sessions() as session:
        logged = (await session.scalars(select(CveImport).where(CveImport.sha256 == result.sha256))).all()
    assert logged and logged[-1].records == 5


async def test_newer_last_modified_updates_and_older_is_skipped(factory: Factory, tmp_path: Path) -> None:
    original = renamed("CVE-2023-51385", "CVE-2099-51385")
    first = await import_file(factory.runtime.sessions, write_feed(tmp_path / "a.json", [original]))
    assert (first.created, first.updated) == (1, 0)

    newer = copy.deepcopy(original)
    newer["lastModified"] = "2024-11-21T08:48:00.000"
    newer["metrics"]["cvssMetricV31"][0]["cvssData"].update(baseScore=6.5, baseSeverity="MEDIUM")
    newer["configurations"][0]["nodes"][0]["cpeMatch"][0]["versionEndExcluding"] = "9.6p1"
    second = await import_file(factory.runtime.sessions, write_feed(tmp_path / "b.json", [newer]))
    assert (second.created, second.updated, second.skipped) == (0, 1, 0)
    row = await stored(factory, "CVE-2099-51385")
    assert row is not None and (row.cvss_score, row.severity) == (6.5, "medium")
    assert [r.version_end_excluding for r in await cpe_rows(factory, "CVE-2099-51385")] == ["9.6p1"]

    third = await import_file(factory.runtime.sessions, write_feed(tmp_path / "c.json", [original]))
    assert (third.created, third.updated, third.skipped) == (0, 0, 1)
    row = await stored(factory, "CVE-2099-51385")
    assert row is not None and row.cvss_score == 6.5


def _bad_cvss(tmp_path: Path) -> Path:
    bad = renamed("CVE-2024-6387", "CVE-2099-0003")
    bad["metrics"]["cvssMetricV31"][0]["cvssData"]["baseScore"] = 11.2
    return write_feed(tmp_path / "bad-cvss.json", [renamed("CVE-2023-38408", "CVE-2099-0001"), bad])


def _truncated(tmp_path: Path) -> Path:
    full = write_feed(tmp_path / "full.json", [renamed("CVE-2023-38408", "CVE-2099-0001"),
                                               renamed("CVE-2024-6387", "CVE-2099-0003")])
    text = full.read_bytes()
    path = tmp_path / "truncated.json.gz"
    path.write_bytes(gzip.compress(text[: len(text) - 400]))
    return path


def _broken_middle(tmp_path: Path) -> Path:
    full = write_feed(tmp_path / "full.json", [renamed("CVE-2023-38408", "CVE-2099-0001"),
                                               renamed("CVE-2024-6387", "CVE-2099-0003"),
                                               renamed("CVE-2023-51385", "CVE-2099-0004")])
    path = tmp_path / "broken.json"
    path.write_text(full.read_text().replace('"vulnStatus": "Modified"', '"vulnStatus": "Modified" "oops"', 2))
    return path


def _wrong_format(tmp_path: Path) -> Path:
    return write_feed(tmp_path / "wrong.json", [renamed("CVE-2023-38408", "CVE-2099-0001")], format="CVE_JSON")


def _wrong_version(tmp_path: Path) -> Path:
    return write_feed(tmp_path / "v1.json", [renamed("CVE-2023-38408", "CVE-2099-0001")], version="1.1")


def _bad_id(tmp_path: Path) -> Path:
    broken = renamed("CVE-2023-38408", "GHSA-1234")
    return write_feed(tmp_path / "bad-id.json", [renamed("CVE-2023-38408", "CVE-2099-0001"), broken])


def _bad_cpe(tmp_path: Path) -> Path:
    broken = renamed("CVE-2023-51385", "CVE-2099-0004")
    broken["configurations"][0]["nodes"][0]["cpeMatch"][0]["criteria"] = "openssh 9.6"
    return write_feed(tmp_path / "bad-cpe.json", [renamed("CVE-2023-38408", "CVE-2099-0001"), broken])


def _not_json(tmp_path: Path) -> Path:
    path = tmp_path / "notes.json"
    path.write_text("this is not JSON")
    return path


@pytest.mark.parametrize(("build", "position", "reason"), [
    (_bad_cvss, "vulnerabilities[1] (CVE-2099-0003) metrics.cvssMetricV31[0].cvssData.baseScore",
     "must be a number from 0.0 to 10.0, found 11.2"),
    (_truncated, "line ", "the file ends inside vulnerabilities[1] (truncated?)"),
    (_broken_middle, "line ", "invalid JSON in vulnerabilities[0]: Expecting ',' delimiter"),
    (_wrong_format, "top level 'format'", "expected \"NVD_CVE\", found 'CVE_JSON'"),
    (_wrong_version, "top level 'version'", "expected \"2.0\""),
    (_bad_id, "vulnerabilities[1]", "'id' is not a CVE id: 'GHSA-1234'"),
    (_bad_cpe, "vulnerabilities[1] (CVE-2099-0004) configurations[0].nodes[0].cpeMatch[0].criteria",
     "not a CPE 2.3 name"),
    (_not_json, "near byte", "invalid JSON"),
])
async def test_malformed_files_are_refused_whole(factory: Factory, tmp_path: Path, build: Any, position: str,
                                                 reason: str) -> None:
    path = build(tmp_path)
    with pytest.raises(FeedError) as caught:
        await import_file(factory.runtime.sessions, path)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: {position}"), message
    assert reason in message, message
    assert "\n" not in message
    # Nothing of the file landed: not even the good record before the bad one, nor an import entry.
    assert await stored(factory, "CVE-2099-0001") is None
    async with factory.runtime.sessions() as session:
        assert (await session.scalars(select(CveImport).where(CveImport.file_name == path.name))).all() == []


async def test_every_fixture_is_the_nvd_record_shape() -> None:
    for cve_id in OPENSSH:
        data = record(cve_id)
        assert data["id"] == cve_id and data["sourceIdentifier"] and data["descriptions"][0]["lang"] == "en"
        json.dumps(data)

"""Range matching on the real OpenSSH records: scanned services and agent software inventories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from ronda.core.events import Event, EventBus
from ronda.cve.matcher import from_package, from_port, make_range, parse_cpe
from ronda.cve.models import CveMatch
from ronda.cve.service import import_file, rematch
from ronda.cve.versions import part_key
from tests.conftest import Factory
from tests.cve.feeds import write_feed
from tests.devices.inventory_helpers import add_data, add_device, add_port

SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")

OPENSSH_CVES = {"CVE-2023-38408", "CVE-2023-51385", "CVE-2024-6387"}  # the three with OpenSSH ranges


@pytest_asyncio.fixture(loop_scope="session")
async def imported(factory: Factory, tmp_path: Path) -> None:
    await import_file(factory.runtime.sessions, write_feed(tmp_path / "openssh.json"))


async def matches(factory: Factory, device_id: str) -> dict[tuple[str, str], CveMatch]:
    async with factory.runtime.sessions() as session:
        rows = (await session.scalars(select(CveMatch).where(CveMatch.device_id == device_id))).all()
    return {(m.cve_id, m.source): m for m in rows}


async def scanned(factory: Factory, tenant_id: str, **port: Any) -> str:
    device_id = await add_device(factory, tenant_id, ip="10.9.0.5", hostname="bastion")
    await add_port(factory, tenant_id, device_id, 22, protocol="tcp", service="ssh", source="scan", **port)
    await rematch(factory.runtime.sessions, None, [device_id])
    return device_id


def test_regresshion_ranges_as_nvd_states_them() -> None:
    between = make_range("CVE-2024-6387", "*", "*", "8.6", None, None, "9.8")
    exact_p1 = make_range("CVE-2024-6387", "8.5", "p1", None, None, None, None)
    exact_98 = make_range("CVE-2024-6387", "9.8", "-", None, None, None, None)
    assert between is not None and exact_p1 is not None and exact_98 is not None
    for version, expected in [("8.9p1", (True, False, False)), ("9.7p1", (True, False, False)),
                              ("9.8p1", (False, False, False)), ("9.8", (False, False, True)),
                              ("8.5p1", (False, True, False)), ("8.6", (True, False, False)),
                              ("8.5", (False, False, False))]:
        key = part_key(version)
        assert (between.covers(version, key), exact_p1.covers(version, key), exact_98.covers(version, key)) \
            == expected, version
    assert make_range("CVE-X", "-", "*", None, None, None, None) is None


def test_inventory_names_and_versions() -> None:
    assert parse_cpe("cpe:2.3:a:openbsd:openssh:8.9:p1:*:*:*:*:*:*") == ("openbsd", "openssh", "8.9p1")
    assert parse_cpe("cpe:/a:openbsd:openssh:9.6p1") == ("openbsd", "openssh", "9.6p1")
    assert parse_cpe("cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*") == ("openbsd", "openssh", None)
    banner = from_port(None, "ssh", None, "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6", 22)
    assert banner is not None and (banner.product, banner.version, banner.source) == ("openssh", "8.9p1", "scan")
    nginx = from_port(None, "http", "nginx/1.24.0", None, 80)
    assert nginx is not None and (nginx.vendor, nginx.product, nginx.version) == ("f5", "nginx", "1.24.0")
    deb = from_package("openssh-server", "1:9.2p1-2+deb12u3", "dpkg")
    assert deb is not None and (deb.vendor, deb.product, deb.version) == ("openbsd", "openssh", "9.2p1")
    chrome = from_package("Google Chrome", "122.0.6261.94", "registry")
    assert chrome is not None and (chrome.vendor, chrome.product, chrome.version) == ("google", "chrome",
                                                                                      "122.0.6261.94")
    firefox = from_package("Mozilla Firefox (x64 en-US)", "123.0", "registry")
    assert firefox is not None and firefox.product == "firefox"
    assert from_package("left-pad", "1.0", "npm") is None
    assert from_package("openssh-server", None, "dpkg") is None


@SESSION_LOOP
@pytest.mark.usefixtures("imported")
async def test_openssh_8_9p1_on_a_scanned_port_matches_regresshion(factory: Factory) -> None:
    tenant_id = await factory.tenant()
    device_id = await scanned(factory, tenant_id, version="8.9p1",
                              cpe="cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*")
    found = await matches(factory, device_id)
    assert {cve for cve, _ in found} == OPENSSH_CVES
    match = found[("CVE-2024-6387", "scan")]
    assert (match.matched_version, match.port, match.package, match.tenant_id) == ("8.9p1", 22, "ssh", tenant_id)
    assert match.cpe == "cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"


@SESSION_LOOP
@pytest.mark.usefixtures("imported")
async def test_openssh_9_8p1_matches_none_of_them(factory: Factory) -> None:
    tenant_id = await factory.tenant()
    device_id = await scanned(factory, tenant_id, version="9.8p1",
                              cpe="cpe:2.3:a:openbsd:openssh:9.8:p1:*:*:*:*:*:*")
    assert await matches(factory, device_id) == {}


@SESSION_LOOP
@pytest.mark.usefixtures("imported")
async def test_banner_without_cpe_and_exact_versions(factory: Factory) -> None:
    tenant_id = await factory.tenant()
    # "9.8" without p1 is the exact CPE 9.8:- NVD lists for CVE-2024-6387; 9.6 is past 51385's range.
    device_id = await scanned(factory, tenant_id, banner="SSH-2.0-OpenSSH_9.8")
    assert {cve for cve, _ in await matches(factory, device_id)} == {"CVE-2024-6387"}
    device_id = await scanned(factory, tenant_id, version="OpenSSH 8.5p1 Debian 1")
    assert {cve for cve, _ in await matches(factory, device_id)} == {"CVE-2023-38408", "CVE-2023-51385",
                                                                     "CVE-2024-6387"}


@SESSION_LOOP
@pytest.mark.usefixtures("imported")
async def test_agent_software_matches_follow_the_inventory(factory: Factory) -> None:
    tenant_id = await factory.tenant()
    device_id = await add_device(factory, tenant_id, hostname="laptop-7", managed=True, sources=["agent"])
    packages = [
        {"name": "openssh-server", "version": "1:9.2p1-2+deb12u3", "source": "dpkg"},
        {"name": "openssh-client", "version": "1:9.2p1-2+deb12u3", "source": "dpkg"},
        {"name": "bash", "version": "5.2.15-2+b2", "source": "dpkg"},
        {"name": "Google Chrome", "version": "122.0.6261.94", "source": "registry"},
    ]
    await add_data(factory, tenant_id, device_id, "software", {"packages": packages, "count": len(packages)})
    bus = EventBus()
    heard: list[Event] = []
    bus.subscribe(heard.append)

    summary = await rematch(factory.runtime.sessions, bus, [device_id])
    found = await matches(factory, device_id)
    assert set(found) == {(cve, "agent") for cve in OPENSSH_CVES}
    assert found[("CVE-2024-6387", "agent")].matched_version == "9.2p1"
    assert found[("CVE-2024-6387", "agent")].package in ("openssh-server", "openssh-client")
    assert summary.inserted == 3
    # New high/critical matches are announced once, after the commit.
    assert sorted((e.type, e.data["cve_id"], e.data["severity"]) for e in heard) == [
        ("cve.matched", "CVE-2023-38408", "critical"), ("cve.matched", "CVE-2023-51385", "critical"),
        ("cve.matched", "CVE-2024-6387", "high"),
    ]
    regression = next(e for e in heard if e.data["cve_id"] == "CVE-2024-6387")
    assert regression.tenant_id == tenant_id
    assert regression.data == {"device_id": device_id, "cve_id": "CVE-2024-6387", "severity": "high",
                               "cvss_score": 8.1, "cpe": "cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*",
                               "source": "agent"}
    first_seen = found[("CVE-2024-6387", "agent")].first_seen

    heard.clear()
    again = await rematch(factory.runtime.sessions, bus, [device_id])
    assert (again.inserted, again.deleted, heard) == (0, 0, [])
    assert (await matches(factory, device_id))[("CVE-2024-6387", "agent")].first_seen == first_seen

    # The agent reports the upgrade: the newest software data decides, the matches go.
    upgraded = [{**p, "version": "1:9.8p1-3"} if p["name"].startswith("openssh") else p for p in packages]
    await add_data(factory, tenant_id, device_id, "software", {"packages": upgraded})
    gone = await rematch(factory.runtime.sessions, bus, [device_id])
    assert gone.deleted == 3 and await matches(factory, device_id) == {}

"""The CVE endpoints over HTTP: matches of the caller's tenant only, search, detail, statistics,
database info, permissions, and POST /cve/update importing from RONDA_CVE_FEED_DIR in the background."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ronda.cve.service import import_file, rematch
from tests.conftest import Account, Factory
from tests.cve.feeds import renamed, write_feed
from tests.devices.inventory_helpers import add_data, add_device, add_port, audit_events
from tests.support import assert_error

SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")
CVE = "/api/v1/cve"
OPENSSH_CVES = {"CVE-2023-38408", "CVE-2023-51385", "CVE-2024-6387"}


@dataclass
class Estate:
    admin: Account
    viewer: Account
    other: Account
    scanned: str  # 8.9p1 on port 22, site-a
    laptop: str  # agent inventory with openssh 9.2p1
    patched: str  # 9.8p1: no match
    foreign: str  # the other tenant's vulnerable device


@pytest_asyncio.fixture(loop_scope="session")
async def estate(factory: Factory, tmp_path: Path) -> Estate:
    await import_file(factory.runtime.sessions, write_feed(tmp_path / "openssh.json.gz", gz=True))
    admin = await factory.user("admin")
    viewer = await factory.user("viewer", tenant_id=admin.tenant_id)
    other = await factory.user("admin")
    scanned = await add_device(factory, admin.tenant_id, ip="10.20.0.22", hostname="bastion", site_id="site-a")
    await add_port(factory, admin.tenant_id, scanned, 22, service="ssh", version="8.9p1", source="scan",
                   cpe="cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*")
    laptop = await add_device(factory, admin.tenant_id, hostname="laptop-3", site_id="site-b", managed=True)
    await add_data(factory, admin.tenant_id, laptop, "software",
                   {"packages": [{"name": "openssh-client", "version": "1:9.2p1-2+deb12u3", "source": "dpkg"}]})
    patched = await add_device(factory, admin.tenant_id, ip="10.20.0.23", hostname="patched")
    await add_port(factory, admin.tenant_id, patched, 22, service="ssh", version="9.8p1", source="scan",
                   cpe="cpe:2.3:a:openbsd:openssh:9.8p1:*:*:*:*:*:*:*")
    foreign = await add_device(factory, other.tenant_id, ip="10.20.0.22", hostname="their-bastion")
    await add_port(factory, other.tenant_id, foreign, 22, service="ssh", banner="SSH-2.0-OpenSSH_8.9p1", source="scan")
    await rematch(factory.runtime.sessions, None, [scanned, laptop, patched, foreign])
    return Estate(admin, viewer, other, scanned, laptop, patched, foreign)


async def everything(client: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{CVE}/affected", headers=who.headers, params={"per_page": 1000, **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    assert response.json()["meta"]["total"] == len(data)
    return data


@SESSION_LOOP
async def test_affected_lists_the_tenants_matches_worst_first(client: httpx.AsyncClient, estate: Estate) -> None:
    items = await everything(client, estate.viewer)
    ids = [item["cve_id"] for item in items]
    assert set(ids) >= OPENSSH_CVES
    scores = [item["cvss_score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    regression = next(item for item in items if item["cve_id"] == "CVE-2024-6387")
    assert (regression["cvss_score"], regression["severity"], regression["published"]) == (
        8.1, "high", "2024-07-01T13:15:06.467000Z")
    assert "https://www.openssh.com/txt/release-9.8" in regression["references"]
    assert regression["mitre_techniques"] == []
    devices = {d["device_id"]: d for d in regression["affected_devices"]}
    assert set(devices) == {estate.scanned, estate.laptop} and regression["affected_device_count"] == 2
    assert devices[estate.scanned] | {"first_seen": None} == {
        "device_id": estate.scanned, "ip": "10.20.0.22", "hostname": "bastion", "device_name": None,
        "site_id": "site-a", "matched_service": "ssh", "matched_port": 22, "matched_version": "8.9p1",
        "cpe": "cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*", "source": "scan", "first_seen": None}
    assert devices[estate.laptop]["source"] == "agent" and devices[estate.laptop]["matched_version"] == "9.2p1"
    assert devices[estate.scanned]["first_seen"].endswith("Z")


@SESSION_LOOP
async def test_affected_pagination_and_filters(client: httpx.AsyncClient, estate: Estate) -> None:
    full = [item["cve_id"] for item in await everything(client, estate.admin)]
    page = await client.get(f"{CVE}/affected", headers=estate.admin.headers, params={"page": 2, "per_page": 1})
    assert page.status_code == 200
    assert [i["cve_id"] for i in page.json()["data"]] == full[1:2]
    assert page.json()["meta"] | {"total": 0} == {"total": 0, "page": 2, "per_page": 1, "skip": 1, "limit": 1}
    assert page.json()["meta"]["total"] == len(full)
    limited = await client.get(f"{CVE}/affected", headers=estate.admin.headers, params={"skip": 2, "limit": 1})
    assert [i["cve_id"] for i in limited.json()["data"]] == full[2:3]

    high = await everything(client, estate.admin, severity="high")
    assert "CVE-2024-6387" in {i["cve_id"] for i in high} and {i["severity"] for i in high} == {"high"}
    strong = await everything(client, estate.admin, cvss_min=9)
    assert {i["cve_id"] for i in strong} >= {"CVE-2023-38408", "CVE-2023-51385"}
    assert all(i["cvss_score"] >= 9 for i in strong) and "CVE-2024-6387" not in {i["cve_id"] for i in strong}
    assert [i["cve_id"] for i in await everything(client, estate.admin, min_cvss=9)] == [i["cve_id"] for i in strong]
    site = await everything(client, estate.admin, site_id="site-b")
    assert {d["device_id"] for i in site for d in i["affected_devices"]} == {estate.laptop}
    one = await everything(client, estate.admin, device_id=estate.scanned)
    assert {d["device_id"] for i in one for d in i["affected_devices"]} == {estate.scanned}
    text = await everything(client, estate.admin, search="security regression")
    assert [i["cve_id"] for i in text] == ["CVE-2024-6387"]
    by_id = await everything(client, estate.admin, search="CVE-2023-5")
    assert [i["cve_id"] for i in by_id] == ["CVE-2023-51385"]

    for params in ({"cvss_min": 11}, {"severity": "bogus"}, {"per_page": 0}, {"page": 0}, {"limit": 101}):
        assert_error(await client.get(f"{CVE}/affected", headers=estate.admin.headers, params=params), 400,
                     "BAD_REQUEST")


@SESSION_LOOP
async def test_matches_are_tenant_scoped(client: httpx.AsyncClient, estate: Estate) -> None:
    theirs = await everything(client, estate.other)
    regression = next(item for item in theirs if item["cve_id"] == "CVE-2024-6387")
    assert [d["device_id"] for d in regression["affected_devices"]] == [estate.foreign]
    assert regression["affected_devices"][0]["matched_version"] == "8.9p1"  # read from the banner
    # Another tenant's device id filters to nothing; its devices never show in detail or stats.
    assert await everything(client, estate.other, device_id=estate.scanned) == []
    detail = await client.get(f"{CVE}/CVE-2024-6387", headers=estate.other.headers)
    assert [d["device_id"] for d in detail.json()["affected_devices"]] == [estate.foreign]
    stats = await client.get(f"{CVE}/stats", headers=estate.other.headers)
    assert stats.json()["affected_devices"] == 1


@SESSION_LOOP
async def test_search(client: httpx.AsyncClient, estate: Estate) -> None:
    headers = estate.viewer.headers
    exact = await client.get(f"{CVE}/search", headers=headers, params={"q": "CVE-2024-6387"})
    assert [i["cve_id"] for i in exact.json()["data"]] == ["CVE-2024-6387"]
    terrapin = await client.get(f"{CVE}/search", headers=headers, params={"q": "terrapin attack"})
    found = terrapin.json()["data"]
    assert "CVE-2023-48795" in [i["cve_id"] for i in found]
    item = next(i for i in found if i["cve_id"] == "CVE-2023-48795")
    assert (item["cvss_score"], item["severity"]) == (None, None)  # NVD had not scored it yet
    product = await client.get(f"{CVE}/search", headers=headers,
                               params={"vendor": "openbsd", "product": "openssh", "per_page": 2, "sort": "cve_id"})
    body = product.json()
    assert body["meta"]["total"] >= 3 and len(body["data"]) == 2
    assert [i["cve_id"] for i in body["data"]] == sorted(i["cve_id"] for i in body["data"])
    critical = await client.get(f"{CVE}/search", headers=headers,
                                params={"vendor": "openbsd", "severity": "critical", "per_page": 100})
    assert {i["cve_id"] for i in critical.json()["data"]} >= {"CVE-2023-38408", "CVE-2023-51385"}
    assert {i["severity"] for i in critical.json()["data"]} == {"critical"}
    assert_error(await client.get(f"{CVE}/search", headers=headers, params={"sort": "nope"}), 400, "BAD_REQUEST")


@SESSION_LOOP
async def test_detail(client: httpx.AsyncClient, estate: Estate) -> None:
    response = await client.get(f"{CVE}/cve-2024-6387", headers=estate.viewer.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cve_id"] == "CVE-2024-6387" and body["vuln_status"] == "Modified"
    assert body["source_identifier"] == "secalert@redhat.com" and body["weaknesses"] == ["CWE-362", "CWE-364"]
    assert body["cvss_v31_vector"] == "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"
    ranges = [c for c in body["affected_cpes"] if c["product"] == "openssh"]
    assert {(c["version_start_including"], c["version_end_excluding"]) for c in ranges} >= {("8.6", "9.8"),
                                                                                        (None, "4.4")}
    assert "Upgrade openbsd openssh to 9.8 or later (versions from 8.6 are affected)" in body["remediation"]
    assert any(line.startswith("See https://lists.mindrot.org/") for line in body["remediation"])
    assert {d["device_id"] for d in body["affected_devices"]} == {estate.scanned, estate.laptop}
    assert body["last_modified"] == "2024-07-09T06:15:03.513000Z"

    assert_error(await client.get(f"{CVE}/CVE-2031-99999", headers=estate.viewer.headers), 404, "NOT_FOUND")
    for bad in ("not-a-cve", "CVE-24-1", "CVE-2024-12"):
        assert_error(await client.get(f"{CVE}/{bad}", headers=estate.viewer.headers), 400, "BAD_REQUEST")


@SESSION_LOOP
async def test_stats_and_db_info(client: httpx.AsyncClient, estate: Estate) -> None:
    stats = (await client.get(f"{CVE}/stats", headers=estate.viewer.headers)).json()
    assert stats["affected_devices"] == 2
    assert stats["by_severity"]["critical"] >= 2 and stats["by_severity"]["high"] >= 1
    assert stats["total_matched"] == sum(stats["by_severity"].values())
    assert stats["total_matches"] >= 6 and stats["db_total_cves"] >= 5
    assert stats["last_db_update"].endswith("Z")
    info = (await client.get(f"{CVE}/db-info", headers=estate.viewer.headers)).json()
    assert info["total_entries"] >= 5 and info["update_source"] == "NVD" and info["total_cpe_ranges"] >= 60
    assert info["feed_dir_configured"] is False and info["next_scheduled_update"] is None
    assert info["last_import"]["file_name"] == info["feed_files"][0]["file_name"]
    assert "openssh.json.gz" in {f["file_name"] for f in info["feed_files"]}


@SESSION_LOOP
async def test_permissions(client: httpx.AsyncClient, factory: Factory, estate: Estate) -> None:
    user = await factory.user("user", tenant_id=estate.admin.tenant_id)
    for path in ("/affected", "/search", "/stats", "/db-info", "/CVE-2024-6387"):
        assert_error(await client.get(CVE + path), 401)
        assert_error(await client.get(CVE + path, headers=user.headers), 403, "FORBIDDEN")
    assert_error(await client.post(f"{CVE}/update", headers=estate.viewer.headers), 403, "FORBIDDEN")
    # The shared server has no feed directory configured.
    assert_error(await client.post(f"{CVE}/update", headers=estate.admin.headers), 409, "CONFLICT")


async def _until(check: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


@SESSION_LOOP
async def test_update_imports_new_feed_files_and_rematches(server_factory: Any, factory: Factory,
                                                           tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    product = "ronda_test:update_sshd"
    write_feed(feeds / "nvdcve-2.0-2099.json.gz", [renamed("CVE-2024-6387", "CVE-2099-66387", product)], gz=True)
    server = await server_factory(cve_feed_dir=feeds, cve_match_interval=0.1, cve_feed_interval=0)
    admin = await factory.user("admin")
    device = await add_device(factory, admin.tenant_id, ip="10.30.0.1", hostname="edge")
    await add_port(factory, admin.tenant_id, device, 2222, service="ssh", source="scan",
                   cpe=f"cpe:2.3:a:{product}:9.1p1:*:*:*:*:*:*:*")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        accepted = await http.post(f"{CVE}/update", headers=admin.headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() | {"feed_dir": ""} == {
            "status": "accepted", "feed_dir": "", "new_files": ["nvdcve-2.0-2099.json.gz"], "already_imported": 0,
            "detail": "importing 1 new file(s) in the background"}

        async def imported() -> bool:
            info = (await http.get(f"{CVE}/db-info", headers=admin.headers)).json()
            return "nvdcve-2.0-2099.json.gz" in {f["file_name"] for f in info["feed_files"]}

        await _until(imported)

        async def matched() -> list[dict[str, Any]]:
            response = await http.get(f"{CVE}/affected", headers=admin.headers, params={"device_id": device})
            return [i for i in response.json()["data"] if i["cve_id"] == "CVE-2099-66387"]

        [item] = await _until(matched)
        assert item["affected_devices"][0]["matched_port"] == 2222
        info = (await http.get(f"{CVE}/db-info", headers=admin.headers)).json()
        assert info["feed_dir_configured"] is True and info["next_scheduled_update"] is None  # schedule off

        again = await http.post(f"{CVE}/update", headers=admin.headers)
        assert again.status_code == 202 and again.json()["status"] == "up_to_date"
        assert again.json()["already_imported"] == 1
    audited = await audit_events(factory, admin.tenant_id, "cve.update_requested")
    assert len(audited) == 2 and audited[0].details["new_files"] == ["nvdcve-2.0-2099.json.gz"]

    # An agent reporting new software is matched by the runner too (no event needed).
    laptop = await add_device(factory, admin.tenant_id, hostname="edge-laptop", managed=True)
    await add_data(factory, admin.tenant_id, laptop, "software",
                   {"packages": [{"name": "openssh-server", "version": "1:8.9p1-3ubuntu0.10", "source": "dpkg"}]})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def laptop_matched() -> list[dict[str, Any]]:
            response = await http.get(f"{CVE}/affected", headers=admin.headers, params={"device_id": laptop})
            return [i["cve_id"] for i in response.json()["data"]]

        assert "CVE-2024-6387" in await _until(laptop_matched)


@SESSION_LOOP
async def test_scheduled_feed_check_imports_at_start(server_factory: Any, factory: Factory, tmp_path: Path) -> None:
    feeds = tmp_path / "scheduled"
    feeds.mkdir()
    write_feed(feeds / "nvdcve-2.0-2098.json", [renamed("CVE-2023-38408", "CVE-2098-38408", "ronda_test:sched")])
    server = await server_factory(cve_feed_dir=feeds, cve_match_interval=0.1, cve_feed_interval=3600)
    viewer = await factory.user("viewer")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def scheduled() -> dict[str, Any] | None:
            info = (await http.get(f"{CVE}/db-info", headers=viewer.headers)).json()
            files = [f for f in info["feed_files"] if f["file_name"] == "nvdcve-2.0-2098.json"]
            return info if files and files[0]["source"] == "schedule" else None

        info = await _until(scheduled)
        assert info["next_scheduled_update"].endswith("Z")
        detail = await http.get(f"{CVE}/CVE-2098-38408", headers=viewer.headers)
        assert detail.status_code == 200 and detail.json()["cvss_score"] == 9.8


@SESSION_LOOP
async def test_device_event_wakes_matching_and_raises_a_cve_alert(server_factory: Any, factory: Factory,
                                                                   tmp_path: Path) -> None:
    product = "ronda_test:alerting_sshd"
    server = await server_factory(cve_match_interval=10, cve_feed_interval=0)
    admin = await factory.user("admin")
    device = await add_device(factory, admin.tenant_id, ip="10.40.0.9", hostname="jump")
    await add_port(factory, admin.tenant_id, device, 22, service="ssh", source="scan",
                   cpe=f"cpe:2.3:a:{product}:8.9p1:*:*:*:*:*:*:*")
    record = renamed("CVE-2023-38408", "CVE-2096-38408", product)
    await import_file(factory.runtime.sessions, write_feed(tmp_path / "alerting.json", [record]))
    # The scanner announces the port: the runner wakes at once instead of waiting its 10 s.
    await server.app.state.events.publish("device.port_opened", admin.tenant_id, {
        "device_id": device, "ip": "10.40.0.9", "port": 22, "protocol": "tcp", "service": "ssh", "product": None,
        "version": "8.9p1", "cpe": f"cpe:2.3:a:{product}:8.9p1:*:*:*:*:*:*:*", "scan_id": None})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def alert() -> list[dict[str, Any]]:
            response = await http.get("/api/v1/alerts", headers=admin.headers, params={"source": "cve"})
            return [a for a in response.json()["data"] if a.get("device_id") == device]

        [raised] = await _until(alert, timeout=8)
    assert raised["severity"] == "critical" and "CVE-2096-38408" in raised["title"]

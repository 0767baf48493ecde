"""GET /devices, /devices/my-devices and /devices/tenant-devices: filters, sort, search, paging, CSV, data."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, Factory
from tests.devices.inventory_helpers import (
    DEVICES,
    add_data,
    add_device,
    ago,
    count_statements,
    parse_csv,
)
from tests.support import assert_error


async def inventory(factory: Factory) -> tuple[Account, Account, dict[str, str]]:
    """An admin, a user, and a tenant of devices learned every way."""
    admin = await factory.user("admin")
    user = await factory.user("user", tenant_id=admin.tenant_id)
    t = admin.tenant_id
    ids = {
        # Managed, recently heard from: online whatever the stored flag says.
        "mbp": await add_device(factory, t, device_name="Ana's MacBook", hostname="mbp-ana", serial_number="C02XL0",
                                os_type="macos", os_version="14.2.1", vendor="Apple", ip="10.0.0.9",
                                mac="A4:83:E7:00:00:01", managed=True, is_online=False, last_seen=ago(seconds=5),
                                user_id=user.id, tags=["finance", "remote"], sources=["agent"], site_id="site_hq",
                                compliance_status="compliant", compliance_score=100.0,
                                compliance_checks={"disk_encryption": "pass", "firewall_enabled": "pass"}),
        # Managed but silent for an hour: offline even though the stored flag says online.
        "win": await add_device(factory, t, device_name="Reception PC", hostname="recep-01", os_type="windows",
                                os_version="10.0.19045", vendor="Dell Inc.", ip="10.0.0.10", managed=True,
                                is_online=True, last_seen=ago(hours=1), tags=["front-desk"], sources=["agent"],
                                site_id="site_hq", device_type="desktop", compliance_status="non_compliant",
                                compliance_score=40.0),
        # Scanned, the last scan saw it up.
        "printer": await add_device(factory, t, hostname="printer-3", vendor="HP", ip="10.0.0.100",
                                    mac="00:11:22:33:44:55", device_type="printer", is_online=True,
                                    last_seen=ago(minutes=30), site_id="site_branch"),
        # Scanned, down at the last scan; an IPv6-only box.
        "nas": await add_device(factory, t, hostname="nas", vendor="Synology", ip="fd00::5", device_type="storage",
                                is_online=False, last_seen=ago(days=2), os_guess="Linux 4.x",
                                compliance_status="needs_review"),
    }
    return admin, user, ids


async def listed(client: httpx.AsyncClient, account: Account, path: str = DEVICES, **params: Any) -> list[str]:
    response = await client.get(path, headers=account.headers, params=params)
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["data"]]


async def test_filters(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, user, ids = await inventory(factory)

    async def found(**params: Any) -> set[str]:
        return set(await listed(client, admin, **params))

    everything = set(ids.values())
    assert await found() == everything
    assert await found(is_online="true") == {ids["mbp"], ids["printer"]}
    assert await found(is_online="false") == {ids["win"], ids["nas"]}
    assert await found(managed="true") == {ids["mbp"], ids["win"]}
    assert await found(managed="false", is_online="true") == {ids["printer"]}
    assert await found(site_id="site_hq") == {ids["mbp"], ids["win"]}
    assert await found(vendor="dell") == {ids["win"]}
    assert await found(os="macOS") == {ids["mbp"]}
    assert await found(os="10.0.190") == {ids["win"]}
    assert await found(device_type="Printer") == {ids["printer"]}
    assert await found(compliance_status="non_compliant") == {ids["win"]}
    assert await found(compliance_status="needs_review") == {ids["nas"]}
    assert await found(user_id=user.id) == {ids["mbp"]}
    assert await found(tags="finance") == {ids["mbp"]}
    assert await found(tags="fin") == set()  # one whole tag, not a substring
    assert await found(tags="front-desk", site_id="site_hq") == {ids["win"]}

    assert await found(search="A4:83") == {ids["mbp"]}
    assert await found(search="c02xl") == {ids["mbp"]}
    assert await found(search="10.0.0.10") == {ids["win"], ids["printer"]}
    assert await found(search="synology") == {ids["nas"]}
    assert await found(search="RECEPTION") == {ids["win"]}
    assert await found(search="100%") == set()

    for bad in ({"is_online": "maybe"}, {"compliance_status": "great"}, {"managed": "2"}, {"sort": "serial"},
                {"tags": "x" * 51}):
        assert_error(await client.get(DEVICES, headers=admin.headers, params=bad), 400, "BAD_REQUEST")


async def test_online_state_in_responses_follows_the_one_rule(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _, ids = await inventory(factory)
    response = await client.get(DEVICES, headers=admin.headers)
    online = {d["id"]: d["is_online"] for d in response.json()["data"]}
    assert online == {ids["mbp"]: True, ids["win"]: False, ids["printer"]: True, ids["nas"]: False}
    assert (await client.get(f"{DEVICES}/{ids['win']}", headers=admin.headers)).json()["is_online"] is False


async def test_sorting(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _, ids = await inventory(factory)
    # Default: most recently seen first.
    assert await listed(client, admin) == [ids["mbp"], ids["printer"], ids["win"], ids["nas"]]
    assert await listed(client, admin, sort="last_seen") == [ids["nas"], ids["win"], ids["printer"], ids["mbp"]]
    # IPv4 in numeric order (10.0.0.9 < 10.0.0.10 < 10.0.0.100), then IPv6.
    assert await listed(client, admin, sort="ip") == [ids["mbp"], ids["win"], ids["printer"], ids["nas"]]
    assert await listed(client, admin, sort="-ip") == [ids["nas"], ids["printer"], ids["win"], ids["mbp"]]
    assert await listed(client, admin, sort="hostname") == [ids["mbp"], ids["nas"], ids["printer"], ids["win"]]
    assert await listed(client, admin, sort="-vendor") == [ids["nas"], ids["printer"], ids["win"], ids["mbp"]]
    # device_name: missing names last in both directions.
    by_name = await listed(client, admin, sort="device_name")
    assert by_name[:2] == [ids["mbp"], ids["win"]]
    assert (await listed(client, admin, sort="-device_name"))[:2] == [ids["win"], ids["mbp"]]
    assert (await listed(client, admin, sort="compliance_status"))[0] == ids["mbp"]
    sort_error = assert_error(await client.get(DEVICES, headers=admin.headers, params={"sort": "-os"}), 400)
    assert "ip" in sort_error["detail"] and "last_seen" in sort_error["detail"]


async def test_both_pagination_styles(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for n in range(7):
        await add_device(factory, admin.tenant_id, device_name=f"d{n}", last_seen=ago(minutes=n))
    page = (await client.get(DEVICES, headers=admin.headers, params={"page": 2, "per_page": 3})).json()
    assert [d["device_name"] for d in page["data"]] == ["d3", "d4", "d5"]
    assert page["meta"] == {"total": 7, "page": 2, "per_page": 3, "skip": 3, "limit": 3}
    window = (await client.get(DEVICES, headers=admin.headers, params={"skip": 5, "limit": 10})).json()
    assert [d["device_name"] for d in window["data"]] == ["d5", "d6"]
    assert window["meta"]["total"] == 7 and window["meta"]["limit"] == 10
    default = (await client.get(DEVICES, headers=admin.headers)).json()
    assert default["meta"]["per_page"] == 100 and len(default["data"]) == 7
    beyond = (await client.get(DEVICES, headers=admin.headers, params={"page": 9, "per_page": 3})).json()
    assert beyond["data"] == [] and beyond["meta"]["total"] == 7
    for bad in ({"per_page": 1001}, {"per_page": 0}, {"page": 0}, {"limit": 101}, {"skip": -1},
                {"page": 1, "limit": 5}, {"skip": 10**9}):
        assert_error(await client.get(DEVICES, headers=admin.headers, params=bad), 400, "BAD_REQUEST")


async def test_csv_export_honours_filters(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, user, ids = await inventory(factory)
    response = await client.get(DEVICES, headers=admin.headers, params={"format": "csv", "site_id": "site_hq",
                                                                        "sort": "ip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="devices.csv"' in response.headers["content-disposition"]
    header = response.text.splitlines()[0].split(",")
    assert header == ["id", "device_name", "hostname", "serial_number", "device_type", "os_type", "os_version", "ip",
                      "mac", "vendor", "is_online", "last_seen", "user_id", "site_id", "tags", "open_ports",
                      "sources", "managed", "compliance_status", "compliance_score"]
    rows = parse_csv(response.text)
    assert [r["id"] for r in rows] == [ids["mbp"], ids["win"]]
    mbp, win = rows
    assert mbp["is_online"] == "true" and win["is_online"] == "false"
    assert mbp["tags"] == "finance;remote" and mbp["user_id"] == user.id and mbp["last_seen"].endswith("Z")
    assert mbp["compliance_status"] == "compliant" and mbp["compliance_score"] == "100.0"
    by_accept = await client.get(DEVICES, headers={**admin.headers, "Accept": "text/csv"},
                                 params={"is_online": "false"})
    assert {r["id"] for r in parse_csv(by_accept.text)} == {ids["win"], ids["nas"]}
    # A user's export holds only its own devices.
    own = await client.get(DEVICES, headers=user.headers, params={"format": "csv"})
    assert [r["id"] for r in parse_csv(own.text)] == [ids["mbp"]]
    mine = await client.get(f"{DEVICES}/tenant-devices", headers=admin.headers, params={"format": "csv"})
    assert len(parse_csv(mine.text)) == 4


async def test_include_data_adds_the_latest_version_of_each_type(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _, ids = await inventory(factory)
    t = admin.tenant_id
    await add_data(factory, t, ids["mbp"], "security", {"disk_encryption": False}, collected_at=ago(days=3))
    latest_security = await add_data(factory, t, ids["mbp"], "security", {"disk_encryption": True},
                                     collected_at=ago(days=1))
    hardware = await add_data(factory, t, ids["mbp"], "hardware", {"cpu": "M3 Max"}, collected_at=ago(days=2))
    await add_data(factory, t, ids["win"], "software", {"apps": [{"name": "7-Zip", "version": "23.01"}]})

    plain = (await client.get(DEVICES, headers=admin.headers)).json()["data"]
    assert all(d["device_data"] is None for d in plain)
    rich = {d["id"]: d for d in (await client.get(DEVICES, headers=admin.headers,
                                                  params={"include_data": "true"})).json()["data"]}
    mbp_data = {row["data_type"]: row for row in rich[ids["mbp"]]["device_data"]}
    assert set(mbp_data) == {"security", "hardware"}
    assert mbp_data["security"]["id"] == latest_security and mbp_data["security"]["data"] == {"disk_encryption": True}
    assert mbp_data["hardware"]["id"] == hardware and mbp_data["hardware"]["collected_at"].endswith("Z")
    assert [row["data_type"] for row in rich[ids["win"]]["device_data"]] == ["software"]
    assert rich[ids["nas"]]["device_data"] == []

    one = (await client.get(f"{DEVICES}/{ids['mbp']}", headers=admin.headers)).json()
    assert {row["data_type"] for row in one["device_data"]} == {"security", "hardware"}
    lean = (await client.get(f"{DEVICES}/{ids['mbp']}", headers=admin.headers,
                             params={"include_data": "false"})).json()
    assert lean["device_data"] is None and lean["compliance"]["checks"]["disk_encryption"] == "pass"


async def test_my_devices_and_tenant_devices_follow_the_seed(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, user, ids = await inventory(factory)
    await add_data(factory, admin.tenant_id, ids["mbp"], "security", {"firewall_enabled": True})
    own_admin = await add_device(factory, admin.tenant_id, device_name="admin box", user_id=admin.id)

    mine = (await client.get(f"{DEVICES}/my-devices", headers=user.headers)).json()
    assert [d["id"] for d in mine["data"]] == [ids["mbp"]]
    assert mine["data"][0]["device_data"][0]["data"] == {"firewall_enabled": True}  # include_data defaults to true
    assert mine["meta"] == {"total": 1, "page": 1, "per_page": 50, "skip": 0, "limit": 50}
    lean = (await client.get(f"{DEVICES}/my-devices", headers=user.headers, params={"include_data": "false"})).json()
    assert lean["data"][0]["device_data"] is None
    assert await listed(client, admin, f"{DEVICES}/my-devices") == [own_admin]

    everyone = (await client.get(f"{DEVICES}/tenant-devices", headers=admin.headers)).json()
    assert len(everyone["data"]) == 5 and everyone["meta"]["limit"] == 50
    assert all(isinstance(d["device_data"], list) for d in everyone["data"])
    assert await listed(client, admin, f"{DEVICES}/tenant-devices", user_id=user.id) == [ids["mbp"]]
    assert await listed(client, admin, f"{DEVICES}/tenant-devices", skip=4, limit=100) != []
    for bad in ({"limit": 101}, {"limit": 0}, {"skip": -5}):
        assert_error(await client.get(f"{DEVICES}/tenant-devices", headers=admin.headers, params=bad), 400)
        assert_error(await client.get(f"{DEVICES}/my-devices", headers=user.headers, params=bad), 400)

    for role in ("user", "viewer", "analyst", "operator"):
        someone = user if role == "user" else await factory.user(role, tenant_id=admin.tenant_id)
        assert_error(await client.get(f"{DEVICES}/tenant-devices", headers=someone.headers), 403, "FORBIDDEN")
    root = await factory.user("super_admin", tenant_id=admin.tenant_id)
    assert len(await listed(client, root, f"{DEVICES}/tenant-devices")) == 5

    # The seed's paths under /v1 work unchanged.
    seed = await client.get("/v1/devices/tenant-devices", headers=admin.headers)
    assert seed.status_code == 200 and len(seed.json()["data"]) == 5


async def test_my_devices_default_page_is_fifty(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("user")
    for n in range(55):
        await add_device(factory, user.tenant_id, device_name=f"d{n:02}", user_id=user.id)
    page = (await client.get(f"{DEVICES}/my-devices", headers=user.headers)).json()
    assert len(page["data"]) == 50 and page["meta"]["total"] == 55
    rest = (await client.get(f"{DEVICES}/my-devices", headers=user.headers, params={"skip": 50})).json()
    assert len(rest["data"]) == 5
    assert len((await client.get(DEVICES, headers=user.headers)).json()["data"]) == 55


async def test_list_with_data_costs_the_same_queries_for_3_or_100_devices(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """Query-count baseline: the tenant (its policy; none once the caller is remembered), the page with its
    total, latest data: never one query per device."""
    admin = await factory.user("admin")
    t = admin.tenant_id
    assert (await client.get(DEVICES, headers=admin.headers)).status_code == 200  # the caller, remembered
    tenant = 0 if factory.live.app.state.authenticator.callers.epoch is not None else 1
    for n in range(3):
        device = await add_device(factory, t, device_name=f"d{n}")
        await add_data(factory, t, device, "security", {"n": n})
    params: dict[str, str | int] = {"per_page": 100, "include_data": "true"}
    with count_statements(factory) as small:
        response = await client.get(DEVICES, headers=admin.headers, params=params)
        assert len(response.json()["data"]) == 3
    for n in range(3, 100):
        device = await add_device(factory, t, device_name=f"d{n}")
        await add_data(factory, t, device, "security", {"n": n})
        await add_data(factory, t, device, "hardware", {"n": n})
    with count_statements(factory) as large:
        response = await client.get(DEVICES, headers=admin.headers, params=params)
        body = response.json()
        assert len(body["data"]) == 100 and all(d["device_data"] for d in body["data"])
    assert len(small) == len(large) == tenant + 2, large
    with count_statements(factory) as lean:
        await client.get(DEVICES, headers=admin.headers, params={"per_page": 100})
    assert len(lean) == tenant + 1, lean


async def test_the_total_comes_with_the_page_filtered_or_not(client: httpx.AsyncClient, factory: Factory) -> None:
    """The page's rows carry the list's total (a filtered count, or the tenant's kept one); an empty
    page counts apart. Another tenant's devices never count."""
    admin = await factory.user("admin")
    other = await factory.user("admin")
    for n in range(5):
        await add_device(factory, admin.tenant_id, device_name=f"d{n}", vendor="Apple" if n % 2 else "Dell")
    await add_device(factory, other.tenant_id, device_name="theirs", vendor="Apple")
    for params, total, shown in (({"per_page": 2}, 5, 2), ({"per_page": 2, "vendor": "apple"}, 2, 2),
                                 ({"per_page": 1, "vendor": "dell"}, 3, 1), ({"page": 3, "per_page": 2}, 5, 1),
                                 ({"page": 4, "per_page": 2}, 5, 0), ({"vendor": "hp"}, 0, 0)):
        with count_statements(factory) as statements:
            body = (await client.get(DEVICES, headers=admin.headers, params=params)).json()
        assert body["meta"]["total"] == total and len(body["data"]) == shown, params
        # One statement for the page and its total, one more to count an empty page (tenant read aside).
        assert len([sql for sql in statements if "FROM devices" in sql or "device_counts" in sql]) == \
            (1 if shown else 2), statements

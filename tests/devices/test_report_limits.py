"""POST /devices/report refuses bad input cleanly: wrong types, absurd sizes, gzip bombs; nothing is written."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import httpx
import orjson

from ronda.devices.models import Device
from tests.agents.helpers import REPORT, report_body
from tests.conftest import Factory
from tests.devices.inventory_helpers import count_rows
from tests.support import assert_error

JSON = {"Content-Type": "application/json"}


def _fields(response: httpx.Response) -> set[str]:
    return {d["field"] for d in assert_error(response, 400, "BAD_REQUEST")["error"]["details"]}


async def test_wrong_types_name_the_field(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    h = admin.headers
    cases = {
        "security.disk_encryption": report_body(security={"disk_encryption": "yes"}),
        "security.firewall_enabled": report_body(security={"firewall_enabled": 1}),
        "network.listening_ports.0.port": report_body(network={"listening_ports": [{"port": "ssh"}]}),
        "network.listening_ports.0.protocol": report_body(network={"listening_ports": [{"port": 1, "protocol": "x"}]}),
        "network.interfaces.0.mac": report_body(network={"interfaces": [{"name": "en0", "mac": "not-a-mac"}]}),
        "network.interfaces.0.ip": report_body(network={"interfaces": [{"name": "en0", "ip": "999.1.1.1"}]}),
        "hardware": report_body(hardware=["not", "an", "object"]),
        "custom": report_body(custom="text"),
        "serial_number": report_body(serial_number=12345),
        "device_type": report_body(device_type="<script>"),
        "unexpected": report_body(unexpected=True),
        "os_version": report_body(os_version="x" * 101),
    }
    for field, body in cases.items():
        assert field in _fields(await client.post(REPORT, headers=h, json=body)), field
    nan = b'{"serial_number": "A", "custom": {"x": NaN}}'
    malformed = await client.post(REPORT, headers={**h, **JSON}, content=nan)
    assert _fields(malformed) == {"body"}
    assert_error(await client.post(REPORT, headers={**h, **JSON}, content=b"[1, 2]"), 400)
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 0
    # Security values: booleans, pass/fail/unknown in any case, or null.
    mixed = report_body(security={"disk_encryption": True, "firewall_enabled": "FAIL", "screen_lock_enabled": None,
                                  "os_up_to_date": "unknown", "antivirus_enabled": "pass", "remote_login": "off"})
    ok = await client.post(REPORT, headers=h, json=mixed)
    assert ok.status_code == 201, ok.text
    assert ok.json()["compliance"]["checks"] == {"disk_encryption": "pass", "firewall_enabled": "fail",
                                                 "screen_lock_enabled": "unknown", "os_up_to_date": "unknown",
                                                 "antivirus_enabled": "pass"}


async def test_a_50_mb_software_list_is_refused_before_parsing(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    entry = b'{"name": "package-with-a-long-name", "version": "1.2.3-4ubuntu5.6"},'
    chunk = entry * (1_048_576 // len(entry))
    huge = b'{"serial_number": "BIG-1", "software": {"packages": [' + chunk * 50 + b'{}]}}'
    assert len(huge) > 50_000_000
    response = await client.post(REPORT, headers={**admin.headers, **JSON}, content=huge)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    async def stream():  # no Content-Length: counted while it arrives
        yield b'{"serial_number": "BIG-2", "software": {"packages": ['
        for _ in range(12):
            yield chunk

    streamed = await client.post(REPORT, headers={**admin.headers, **JSON}, content=stream())
    assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 0
    # Bigger than the general 1 MiB body limit is fine for a report, up to RONDA_MAX_REPORT_BYTES.
    packages = [{"name": f"pkg-{i:05d}", "version": "1.0." + str(i)} for i in range(40_000)]
    large = orjson.dumps(report_body("BIG-3", software={"packages": packages}))
    assert 1_048_576 < len(large) < 8 * 1_048_576
    accepted = await client.post(REPORT, headers={**admin.headers, **JSON}, content=large)
    assert accepted.status_code == 201, accepted.text[:300]
    # Elsewhere the general limit still applies.
    assert_error(await client.post("/api/v1/devices", headers={**admin.headers, **JSON}, content=large), 413)


async def test_gzip_bodies(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    gz = {**admin.headers, **JSON, "Content-Encoding": "gzip"}
    packed = gzip.compress(orjson.dumps(report_body("GZ-1")))
    response = await client.post(REPORT, headers=gz, content=packed)
    assert response.status_code == 201, response.text
    assert response.json()["serial_number"] == "GZ-1"

    # A bomb: 20 KB that inflates past the 8 MiB limit is refused while inflating.
    bomb = gzip.compress(b'{"serial_number": "GZ-2", "custom": {"x": "' + b"A" * 64_000_000 + b'"}}', 9)
    assert len(bomb) < 200_000
    assert_error(await client.post(REPORT, headers=gz, content=bomb), 413, "PAYLOAD_TOO_LARGE")
    assert_error(await client.post(REPORT, headers=gz, content=b"not gzip at all"), 400, "BAD_REQUEST")
    assert_error(await client.post(REPORT, headers=gz, content=packed[:-12]), 400, "BAD_REQUEST")
    deflated = zlib.compress(orjson.dumps(report_body("GZ-3")))
    br = {**admin.headers, **JSON, "Content-Encoding": "br"}
    assert_error(await client.post(REPORT, headers=br, content=deflated), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 1


async def test_a_smaller_report_limit(server_factory, factory: Factory) -> None:  # type: ignore[no-untyped-def]
    server = await server_factory(max_report_bytes=65536)
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url) as http:
        fits = orjson.dumps(report_body("LIM-1", custom={"x": "a" * 60_000}))
        assert (await http.post(REPORT, headers={**admin.headers, **JSON}, content=fits)).status_code == 201
        over = orjson.dumps(report_body("LIM-2", custom={"x": "a" * 70_000}))
        assert_error(await http.post(REPORT, headers={**admin.headers, **JSON}, content=over), 413)
        packed = gzip.compress(over)
        assert len(packed) < 65536
        refused = await http.post(REPORT, headers={**admin.headers, **JSON, "Content-Encoding": "gzip"}, content=packed)
        assert_error(refused, 413, "PAYLOAD_TOO_LARGE")


async def test_a_probes_scan_result_has_the_report_limit_not_the_general_one(server_factory: Any) -> None:
    """A probe posts a whole site's hosts and ports at once: its result route takes report-sized bodies."""
    server = await server_factory(max_body_bytes=2048, max_report_bytes=65536)
    big = {"hosts": [{"ip": f"10.0.0.{n % 250}", "ports": []} for n in range(400)]}  # ~12 KB
    async with httpx.AsyncClient(base_url=server.url) as http:
        result = await http.post("/api/v1/probes/scans/scn_1/result", json=big)
        assert result.status_code == 401, result.text  # past the body limit, stopped by the missing probe key
        assert_error(await http.post("/api/v1/probes/scans/scn_1/nested/result", json=big), 413)
        assert_error(await http.post("/api/v1/probes/scans/scn_1/fail", json=big), 413)
        assert_error(await http.post("/api/v1/users", json=big), 413)

"""The event bus over the real Redis: events cross processes; local subscribers run once, where published."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from ronda.core.events import Event, EventBus, channel_for
from tests.agents.helpers import REPORT, report_body
from tests.conftest import Factory
from tests.streams.helpers import next_message, open_ws, ready


async def test_broadcast_subscribers_hear_other_processes_and_local_ones_only_their_own(redis_url: str) -> None:
    first, second = EventBus(redis_url), EventBus(redis_url)
    base, _, db = redis_url.rpartition("/")
    other_db = (int(db) + 1) % 16 if db.isdigit() else 1
    elsewhere = EventBus(f"{base}/{other_db}")  # another database: another channel
    await first.start()
    await second.start()
    await elsewhere.start()
    tenant = "tenant_" + secrets.token_hex(6)  # others' tests may share this Redis: only ours count
    heard: dict[str, list[Event]] = {"first_local": [], "second_local": [], "second_broadcast": [], "elsewhere": []}

    def keep(name: str) -> Callable[[Event], None]:
        return lambda event: heard[name].append(event) if event.tenant_id == tenant else None

    first.subscribe(keep("first_local"))
    second.subscribe(keep("second_local"))
    second.subscribe(keep("second_broadcast"), broadcast=True)
    elsewhere.subscribe(keep("elsewhere"), broadcast=True)
    try:
        sent = await first.publish("device.offline", tenant, {"device_id": "dev_1", "site_id": None})
        for _ in range(100):
            if heard["second_broadcast"]:
                break
            await asyncio.sleep(0.02)
        [got] = heard["second_broadcast"]
        assert (got.id, got.type, got.tenant_id, got.data, got.origin) == (
            sent.id, "device.offline", tenant, {"device_id": "dev_1", "site_id": None}, first.origin)
        assert got.occurred_at == sent.occurred_at.replace(microsecond=got.occurred_at.microsecond)
        assert [e.id for e in heard["first_local"]] == [sent.id]  # once, in the publishing process
        assert heard["second_local"] == [] and heard["elsewhere"] == []
    finally:
        for bus in (first, second, elsewhere):
            await bus.close()
    assert channel_for("redis://h:6379/3") == "ronda:3:events" and channel_for("redis://h") == "ronda:0:events"


async def test_an_alert_raised_in_one_process_reaches_a_websocket_on_another(
    client: httpx.AsyncClient, factory: Factory, process_server: object, redis_url: str
) -> None:
    first = process_server(RONDA_REDIS_URL=redis_url)  # type: ignore[operator]
    second = process_server(RONDA_REDIS_URL=redis_url)  # type: ignore[operator]
    admin = await factory.user("admin")
    async with open_ws(second, "/ws/alerts", token=admin.token) as on_second, \
            open_ws(second, "/ws/events", headers=admin.headers, events="device.compliance_changed") as changes:
        await ready(on_second)
        await ready(changes)
        failing = {"disk_encryption": "pass", "firewall_enabled": "fail", "screen_lock_enabled": "pass",
                   "os_up_to_date": "pass", "antivirus_enabled": "pass"}
        async with httpx.AsyncClient(base_url=first, timeout=30) as on_first:
            response = await on_first.post(REPORT, headers=admin.headers, json=report_body(security=failing))
            assert response.status_code in (200, 201), response.text
            device_id = response.json()["id"]
            changed = await next_message(changes, "device_compliance_changed")
            assert changed["data"]["device_id"] == device_id and changed["data"]["new_status"] == "non_compliant"
            message = await next_message(on_second, "alert_created")
            alert = message["data"]["alert"]
            assert (alert["rule"], alert["device_id"], alert["severity"]) == ("non_compliant", device_id, "high")
            # The rules ran once, in the process that published the change: one alert, counted once.
            await asyncio.sleep(0.5)
            listed = (await on_first.get("/api/v1/alerts", headers=admin.headers,
                                         params={"device_id": device_id})).json()["data"]
            assert [(a["id"], a["occurrence_count"]) for a in listed] == [(alert["id"], 1)]
            # And back the other way: acknowledged on the second, heard by a client of the first.
            async with open_ws(first, "/ws/alerts", token=admin.token) as on_first_ws:
                await ready(on_first_ws)
                async with httpx.AsyncClient(base_url=second, timeout=30) as on_second_http:
                    acked = await on_second_http.post(f"/api/v1/alerts/{alert['id']}/acknowledge",
                                                      headers=admin.headers)
                    assert acked.status_code == 200, acked.text
                heard = await next_message(on_first_ws, "alert_acknowledged")
                assert heard["data"]["alert"]["acknowledged_by"] == admin.email


class FlakyLink:
    """A TCP relay to the real Redis whose connections the test can cut, as a network blip would."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_the_listener_reconnects_after_the_connection_drops(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    link = FlakyLink(parts.hostname or "127.0.0.1", parts.port or 6379)
    port = await link.start()
    publisher = EventBus(redis_url)
    listener = EventBus(f"redis://127.0.0.1:{port}{parts.path}")
    tenant = "tenant_" + secrets.token_hex(6)
    heard: list[str] = []
    listener.subscribe(lambda e: heard.append(e.data["n"]) if e.tenant_id == tenant else None, broadcast=True)
    await publisher.start()
    await listener.start()
    try:
        await publisher.publish("device.offline", tenant, {"n": "before"})
        await _until(lambda: heard == ["before"])
        link.cut()  # the subscription's connection dies: the listener must notice and subscribe again
        await _until(lambda: not listener.listening.is_set())
        await _until(listener.listening.is_set)
        await publisher.publish("device.offline", tenant, {"n": "after"})
        await _until(lambda: heard == ["before", "after"])
    finally:
        await publisher.close()
        await listener.close()
        await link.stop()


async def test_an_unreachable_redis_never_blocks_publishing(redis_url: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    bus = EventBus(f"redis://127.0.0.1:{dead}/0")
    local: list[Event] = []
    bus.subscribe(local.append)
    started = time.monotonic()
    await bus.start()  # waits briefly for a subscription that cannot happen, then carries on
    for n in range(100):
        await bus.publish("scan.progress", "tenant_x", {"n": n})
    assert len(local) == 100 and time.monotonic() - started < 5
    await bus.close()

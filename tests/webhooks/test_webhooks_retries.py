"""Retries on a hand-moved clock: 30 s, 2 min, 10 min, 1 h, then failing; persisted across a restart."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from tests.conftest import Factory
from tests.webhooks.helpers import (
    HOOKS,
    SECRET,
    create_hook,
    expected_signature,
    future_clock,
    wait_delivery,
    wake,
)

POLL = {"webhook_poll_interval": 0.02}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_retry_schedule_then_failing_then_reset(server_factory: Any, factory: Factory, receivers: Any) -> None:
    receiver = receivers([500])
    admin = await factory.user("admin")
    server = await server_factory(**POLL)
    clock = future_clock(server, days=10)
    async with httpx.AsyncClient(base_url=server.url) as http:
        hook = await create_hook(http, admin, receiver.url)
        delivery = (await http.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
        first = await wait_delivery(http, admin, hook["id"], delivery["id"], 1)
        assert first["status"] == "pending" and first["status_code"] == 500 and first["error"].startswith("HTTP 500")
        started = clock.now()

        for attempt, delay in enumerate((30, 120, 600, 3600), start=2):
            current = await wait_delivery(http, admin, hook["id"], delivery["id"], attempt - 1)
            assert (at(current["next_attempt_at"]) - clock.now()).total_seconds() == delay
            clock.advance(delay - 1)  # one second early: nothing is sent
            wake(server)
            await asyncio.sleep(0.15)
            assert receiver.count() == attempt - 1, f"attempt {attempt} sent early"
            clock.advance(1)
            wake(server)
            await receiver.wait_for(attempt)
            if attempt < 5:
                state = (await http.get(f"{HOOKS}/{hook['id']}", headers=admin.headers)).json()
                assert state["status"] == "active" and state["consecutive_failures"] >= attempt - 1

        done = await wait_delivery(http, admin, hook["id"], delivery["id"], 5)
        assert done["status"] == "failed" and done["next_attempt_at"] is None and done["attempt"] == 5
        offsets = [(at(a["attempted_at"]) - started).total_seconds() for a in done["attempts"]]
        assert offsets == [0, 30, 150, 750, 4350]
        assert [a["status_code"] for a in done["attempts"]] == [500] * 5
        # Every attempt carried the same delivery id, body and a valid signature.
        requests = receiver.requests
        assert {r.headers["x-ronda-delivery"] for r in requests} == {delivery["id"]}
        assert len({r.body for r in requests}) == 1
        assert all(r.headers["x-ronda-signature"] == expected_signature(SECRET, r.body) for r in requests)

        failing = (await http.get(f"{HOOKS}/{hook['id']}", headers=admin.headers)).json()
        assert failing["status"] == "failing" and failing["consecutive_failures"] == 5
        assert failing["failing_since"] is not None

        clock.advance(10 * 86400)  # no sixth attempt, ever
        wake(server)
        await asyncio.sleep(0.15)
        assert receiver.count() == 5

        # A success resets the hook.
        receiver.respond_with(200)
        again = (await http.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
        ok = await wait_delivery(http, admin, hook["id"], again["id"], 1)
        assert ok["status"] == "succeeded"
        healthy = (await http.get(f"{HOOKS}/{hook['id']}", headers=admin.headers)).json()
        assert healthy["status"] == "active" and healthy["consecutive_failures"] == 0
        assert healthy["failing_since"] is None

    async with transaction(factory.runtime.sessions, write=False) as session:
        marked = (await session.scalars(select(AuditLog).where(
            AuditLog.resource_id == hook["id"], AuditLog.event_type == "webhook.failing"))).all()
    assert len(marked) == 1 and marked[0].actor_type == "system" and marked[0].tenant_id == admin.tenant_id


async def test_retries_survive_a_restart(
    server_factory: Any, process_server: Any, factory: Factory, receivers: Any
) -> None:
    """The first attempt fails in one server, which then stops; a new server process (a separate
    interpreter, sharing only the database) sends the retry when it falls due."""
    receiver = receivers([503, 200])
    admin = await factory.user("admin")
    first = await server_factory(**POLL)
    future_clock(first, days=20)
    async with httpx.AsyncClient(base_url=first.url) as http:
        hook = await create_hook(http, admin, receiver.url)
        delivery = (await http.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
        failed = await wait_delivery(http, admin, hook["id"], delivery["id"], 1)
    assert failed["status"] == "pending" and failed["status_code"] == 503
    await first.stop()  # nothing of the schedule is kept in memory: it is all in the database

    # The new process's clock stands just past the retry's due time (30 s after the failure).
    skew = (at(failed["next_attempt_at"]) - utcnow()).total_seconds() + 1
    url = process_server(RONDA_WEBHOOK_CLOCK_SKEW=str(skew), RONDA_WEBHOOK_POLL_INTERVAL="0.05")
    requests = await receiver.wait_for(2, timeout=20)
    assert requests[1].headers["x-ronda-delivery"] == delivery["id"]
    assert requests[1].body == requests[0].body
    assert requests[1].headers["x-ronda-signature"] == expected_signature(SECRET, requests[1].body)
    async with httpx.AsyncClient(base_url=url) as http:
        done = await wait_delivery(http, admin, hook["id"], delivery["id"], 2)
    assert done["status"] == "succeeded" and [a["status_code"] for a in done["attempts"]] == [503, 200]


async def test_two_servers_never_send_the_same_attempt(
    server_factory: Any, factory: Factory, receivers: Any
) -> None:
    """Two dispatchers on one database, polling the same due rows: each attempt goes out once."""
    receiver = receivers([500])
    admin = await factory.user("admin")
    one = await server_factory(**POLL)
    two = await server_factory(**POLL)
    clock = future_clock(one, days=30)
    two.app.state.webhook_clock = clock  # one time for both, so both find the same rows due
    count = 20
    async with httpx.AsyncClient(base_url=one.url) as http:
        hook = await create_hook(http, admin, receiver.url)
        ids = [(await http.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()["id"]
               for _ in range(count)]
        await receiver.wait_for(count)
        for delivery_id in ids:
            await wait_delivery(http, admin, hook["id"], delivery_id, 1)
        receiver.respond_with(200)
        clock.advance(30)  # every retry falls due at the same moment, in both servers
        wake(one)
        wake(two)
        await receiver.wait_for(2 * count)
        for delivery_id in ids:
            done = await wait_delivery(http, admin, hook["id"], delivery_id, 2)
            assert done["status"] == "succeeded" and done["attempt"] == 2
    await asyncio.sleep(0.2)
    sent = [r.headers["x-ronda-delivery"] for r in receiver.requests]
    assert len(sent) == 2 * count and sorted(sent) == sorted(ids * 2)

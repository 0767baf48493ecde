"""WebSocket message size limits on real servers: the app's 4 KiB limit on client messages, and the
64 KiB frame limit `ronda serve` gives uvicorn (refused by the protocol layer before the app reads it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ronda.streams.session import MAX_CLIENT_MESSAGE
from tests.conftest import Factory, LiveServer, free_port
from tests.streams.helpers import next_message, open_ws, ready


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the connection dropped without a close frame"
        return closed.rcvd.code, closed.rcvd.reason


async def test_messages_up_to_4_kib_are_read_and_one_byte_more_closes_with_1009(
    factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    async with open_ws(live.url, "/ws/events", token=admin.token) as ws:
        await ready(ws)
        await ws.send("x" * MAX_CLIENT_MESSAGE)  # at the limit: ignored, the socket stays open
        await ws.send('{"event": "ping"' + " " * (MAX_CLIENT_MESSAGE - 17) + "}")  # a padded ping at the limit
        await next_message(ws, "pong")
        await ws.send("é" * (MAX_CLIENT_MESSAGE // 2 + 1))  # counted in bytes, not characters
        code, reason = await closed_with(ws)
    assert code == 1009 and reason.startswith("message too big"), (code, reason)

    async with open_ws(live.url, "/ws/alerts", token=admin.token) as ws:
        await ready(ws)
        await ws.send(b"\x00" * (MAX_CLIENT_MESSAGE + 1))  # binary frames too
        assert (await closed_with(ws))[0] == 1009


@pytest.fixture
def serve_process(migrated: str, data_dir: Path) -> Iterator[str]:
    """`ronda serve` as a user starts it, on the test database and signing key."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RONDA_")}
    env.update({"RONDA_DATABASE_URL": migrated, "RONDA_DATA_DIR": str(data_dir),
                "RONDA_SECRET_KEY": "test-secret-" + "x" * 40, "RONDA_LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "-m", "ronda.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "ronda serve exited"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "ronda serve did not answer /health"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_ronda_serve_refuses_frames_over_64_kib_in_the_protocol_layer(
    factory: Factory, serve_process: str
) -> None:
    admin = await factory.user("admin")
    async with open_ws(serve_process, "/ws/events", token=admin.token) as ws:
        await ready(ws)
        await ws.send("x" * (64 * 1024 + 1))
        code, reason = await closed_with(ws)
    # 1009 from uvicorn's WebSocket layer: the app's own refusal would say "message too big: 65537 bytes".
    assert code == 1009 and not reason.startswith("message too big"), (code, reason)

    async with open_ws(serve_process, "/ws/events", token=admin.token) as ws:
        await ready(ws)
        await ws.send("x" * (64 * 1024))  # within uvicorn's limit: the app's 4 KiB limit answers
        code, reason = await closed_with(ws)
    assert code == 1009 and reason.startswith("message too big"), (code, reason)

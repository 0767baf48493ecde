"""A database that cannot be reached is a clean 503 with the contract's error body, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import LiveServer, free_port, make_settings, start_server
from tests.support import assert_error

LOGIN = {"username": "nobody-here", "password": "correct horse battery staple"}


async def _answers_503(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        login = await http.post("/api/v1/auth/login", json=LOGIN)
        body = assert_error(login, 503, "SERVICE_UNAVAILABLE")
        assert body["detail"] == "Database unavailable"
        assert login.headers["x-request-id"]
        keyed = await http.get("/api/v1/users/me", headers={"X-API-Key": "rk_live_" + "0" * 40})
        assert_error(keyed, 503, "SERVICE_UNAVAILABLE")
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.json()["database"] == "unavailable"
        # Metrics still answer: the request figures are in memory; the database probes count as failed.
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert 'ronda_metrics_probe_errors_total{probe="ronda_scans"}' in metrics.text


async def test_postgresql_on_a_port_nobody_listens_on_is_a_503(data_dir: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/ronda"
    server = await start_server(make_settings(url, data_dir))
    try:
        await _answers_503(server)
    finally:
        await server.stop()


async def test_sqlite_file_that_cannot_be_opened_is_a_503(data_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no-such-directory' / 'ronda.db'}"
    server = await start_server(make_settings(url, data_dir))
    try:
        await _answers_503(server)
    finally:
        await server.stop()

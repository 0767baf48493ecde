"""Structured logs carry each request's id, and never a password or token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def test_json_logs_carry_the_request_id_and_no_secrets(migrated: str, data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log_file = tmp_path / "server.log"
    env = {**os.environ, "RONDA_DATABASE_URL": migrated, "RONDA_DATA_DIR": str(data_dir),
           "RONDA_SECRET_KEY": "test-secret-" + "x" * 40, "RONDA_LOG_FORMAT": "json", "RONDA_LOG_LEVEL": "INFO",
           "RONDA_ARGON2_MEMORY_KIB": "8192"}
    with log_file.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "ronda.app:app_from_environment",
                                 "--port", str(port), "--log-level", "warning"], env=env, stderr=sink)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.get(url + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            response = httpx.post(url + "/api/v1/auth/login", headers={"X-Request-ID": "trace-me-42"},
                                  json={"username": "someone", "password": "hunter2-but-longer"})
            assert response.status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "trace-me-42"]
    assert mine, lines
    assert mine[-1]["status"] == 401 and mine[-1]["path"] == "/api/v1/auth/login"
    assert "hunter2-but-longer" not in log_file.read_text()

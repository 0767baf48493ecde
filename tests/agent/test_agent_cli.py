"""`ronda agent ...` run as a user runs it: separate processes, the real collector on this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ronda.agent.collectors.parsing import parse_env_file
from ronda.agent.host import platform_name
from tests.agent.fake_server import REPORT, FakeRonda

RONDA = [sys.executable, "-m", "ronda.cli", "agent"]
CHECKS = ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the live collector test is for Linux")


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("RONDA_")}
    values.update(extra)
    return values


def run(args: list[str], environ: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(RONDA + args, env=environ, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def server() -> Iterator[FakeRonda]:
    fake = FakeRonda()
    yield fake
    fake.stop()


def test_live_collection_on_this_machine(tmp_path: Path) -> None:
    """No fixtures: the Linux collector reads this machine, and what it says matches the machine."""
    result = run(["collect", "--json"], env(tmp_path))
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)

    release = parse_env_file(Path("/etc/os-release").read_text())
    assert report["os_type"] == "linux"
    assert report["os_version"] == (release.get("VERSION_ID") or release.get("BUILD_ID"))
    assert report["hostname"] == socket.gethostname()
    assert report["device_type"] in ("laptop", "desktop", "server", "virtual_machine", "unknown")
    assert report["hardware"]["memory_bytes"] > 0 and report["hardware"]["cpu_threads"] >= 1

    installed = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}\n"], capture_output=True, text=True)
    if installed.returncode == 0:
        expected = sum(1 for line in installed.stdout.splitlines() if line[1:2] == "i")
        assert report["software"]["sources"]["dpkg"] == expected > 0
    assert report["software"]["count"] > 0

    names = {i["name"] for i in report["network"]["interfaces"]}
    assert "lo" in names and set(os.listdir("/sys/class/net")) <= names
    lo = next(i for i in report["network"]["interfaces"] if i["name"] == "lo")
    assert "127.0.0.1" in lo["ips"]

    security = report["security"]
    for check in CHECKS:
        assert security[check] in ("pass", "fail", "unknown")
        assert security["details"][check]["reason"]
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and not Path("/run/user").exists():
        assert security["screen_lock_enabled"] == "unknown"


def test_collect_prints_a_summary_table(tmp_path: Path) -> None:
    result = run(["collect"], env(tmp_path, COLUMNS="160"))
    assert result.returncode == 0, result.stderr
    assert "Posture checks" in result.stdout
    for check in CHECKS:
        assert check in result.stdout


def test_enrol_then_refuse_to_enrol_twice(server: FakeRonda, tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    environ = env(tmp_path, RONDA_AGENT_DIR=str(directory), RONDA_AGENT_TOKEN="ret_from_environment")
    first = run(["enroll", "--server", server.url], environ)
    assert first.returncode == 0, first.stderr
    assert "agt_fake1" in first.stdout
    assert server.received[0].body["platform"] == platform_name()  # e.g. linux-amd64
    assert server.received[0].body["token"] == "ret_from_environment"  # the token never needs to be on argv
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "credential").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "config.json").stat().st_mode) == 0o600

    again = run(["enroll", "--server", server.url, "--token", "ret_other"], environ)
    assert again.returncode == 1 and "already enrolled" in again.stderr
    forced = run(["enroll", "--server", server.url, "--token", "ret_other", "--force"], environ)
    assert forced.returncode == 0, forced.stderr


def test_enrol_with_a_bad_token_exits_non_zero(server: FakeRonda, tmp_path: Path) -> None:
    server.fail("/api/v1/agents/enroll", 401)
    result = run(["enroll", "--server", server.url, "--token", "ret_bad", "--config-dir", str(tmp_path / "c")],
                 env(tmp_path))
    assert result.returncode == 1 and "HTTP 401" in result.stderr
    assert not (tmp_path / "c" / "credential").exists()


def test_run_once_before_enrolment_explains(tmp_path: Path) -> None:
    result = run(["run", "--once", "--config-dir", str(tmp_path / "none")], env(tmp_path))
    assert result.returncode == 2 and "not enrolled" in result.stderr


def test_run_once_fails_while_the_server_is_down_then_delivers_the_queue(server: FakeRonda, tmp_path: Path) -> None:
    environ = env(tmp_path, RONDA_AGENT_DIR=str(tmp_path / "conf"))
    assert run(["enroll", "--server", server.url, "--token", "ret_x"], environ).returncode == 0

    server.fail(REPORT, 503)
    down = run(["run", "--once"], environ)
    assert down.returncode == 1 and "report not sent" in down.stderr
    queued = list((tmp_path / "conf" / "queue").iterdir())
    assert len(queued) == 1 and stat.S_IMODE(queued[0].stat().st_mode) == 0o600
    waiting = queued[0].read_bytes()

    up = run(["run", "--once"], environ)
    assert up.returncode == 0, up.stderr
    delivered = [r for r in server.received if r.path == REPORT and r.status == 200]
    assert len(delivered) == 2
    assert delivered[0].raw == waiting  # the queued report went first, byte for byte
    assert not list((tmp_path / "conf" / "queue").iterdir())
    for request in delivered:
        assert request.headers["content-encoding"] == "gzip"
        assert request.body["os_type"] == "linux" and request.body["hostname"] == socket.gethostname()


def test_run_reports_then_stops_cleanly_on_sigterm(server: FakeRonda, tmp_path: Path) -> None:
    environ = env(tmp_path, RONDA_AGENT_DIR=str(tmp_path / "conf"))
    assert run(["enroll", "--server", server.url, "--token", "ret_x"], environ).returncode == 0
    proc = subprocess.Popen([*RONDA, "run"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.reports():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert server.reports(), "no report arrived"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "stopping" in stderr and "agent stopped" in stderr


def test_the_agent_never_loads_the_server(tmp_path: Path) -> None:
    """The agent ships to endpoints: no FastAPI, SQLAlchemy, settings or server domains in its process."""
    code = (
        "import sys, ronda.agent.cli, ronda.agent.service, ronda.agent.collectors, ronda.agent.client;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'sqlalchemy', 'starlette', "
        "'pydantic_settings', 'uvicorn', 'alembic') or (m.startswith('ronda.') and not m.startswith('ronda.agent')));"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""

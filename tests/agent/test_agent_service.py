"""Enrolment, reporting, the on-disk queue and the run loop, over real HTTP to a fake server."""

from __future__ import annotations

import random
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ronda.agent.client import EnrollError, ServerClient, normalize_server
from ronda.agent.config import ConfigStore, NotEnrolled, default_dir
from ronda.agent.service import Agent, enroll, jittered
from tests.agent.fake_server import DROP, ENROLL, HEARTBEAT, REPORT, FakeRonda
from tests.agent.test_linux_collector import laptop_with

IDENTITY = {"hostname": "thinkpad", "serial_number": "PF3ABC12", "os_type": "linux", "os_version": "22.04",
            "mac": "f4:a4:75:12:34:56"}


@pytest.fixture
def server() -> Iterator[FakeRonda]:
    fake = FakeRonda()
    yield fake
    fake.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Reports:
    """A collector of real (replayed) reports, each stamped with its sequence number."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> dict[str, Any]:
        self.count += 1
        report = laptop_with({}).collect()
        report["device_name"] = f"report-{self.count}"
        return report


def enrolled_agent(server: FakeRonda, directory: Path, *, queue_limit: int = 100) -> tuple[Agent, Reports]:
    store = ConfigStore(directory)
    config = enroll(store, server.url, "ret_token", IDENTITY, "Linux")
    config.queue_limit = queue_limit
    _, credential = store.load()
    reports = Reports()
    client = ServerClient(config.server_url, credential)
    return Agent(store, config, client, reports, rng=random.Random(7)), reports


# --- enrolment ------------------------------------------------------------------------------------


def test_enrol_sends_host_facts_and_stores_owner_only_files(server: FakeRonda, tmp_path: Path) -> None:
    directory = tmp_path / "ronda-agent"
    store = ConfigStore(directory)
    config = enroll(store, server.url + "/api/v1/", "ret_secret_token", IDENTITY, "Linux")

    (request,) = server.received
    assert request.path == ENROLL
    assert request.body == {"token": "ret_secret_token", "hostname": "thinkpad", "serial_number": "PF3ABC12",
                            "os_type": "linux", "os_version": "22.04", "platform": "Linux",
                            "agent_version": request.body["agent_version"], "mac": "f4:a4:75:12:34:56"}
    assert config.server_url == server.url  # /api/v1/ stripped: one base, paths added by the client
    assert (config.agent_id, config.device_id, config.tenant_id) == ("agt_fake1", "dev_fake1", "ten_fake1")
    assert (config.heartbeat_interval, config.report_interval) == (30, 900)

    assert mode(directory) == 0o700
    assert mode(store.config_path) == 0o600 and mode(store.credential_path) == 0o600
    assert store.credential_path.read_text().strip() == server.credential
    assert server.credential not in store.config_path.read_text()  # the secret lives in its own file
    loaded, credential = store.load()
    assert loaded == config and credential == server.credential


def test_enrol_refused_writes_nothing(server: FakeRonda, tmp_path: Path) -> None:
    server.fail(ENROLL, 401)
    store = ConfigStore(tmp_path / "agent")
    with pytest.raises(EnrollError, match="HTTP 401"):
        enroll(store, server.url, "ret_expired", IDENTITY, "Linux")
    assert not store.exists()
    with pytest.raises(NotEnrolled):
        store.load()


def test_enrol_against_nothing_listening_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(EnrollError, match="no answer"):
        enroll(ConfigStore(tmp_path / "a"), "http://127.0.0.1:9", "ret_x", IDENTITY, "Linux")


def test_loosened_permissions_are_tightened_before_use(server: FakeRonda, tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "agent")
    enroll(store, server.url, "ret_token", IDENTITY, "Linux")
    store.credential_path.chmod(0o644)
    store.directory.chmod(0o755)
    store.load()
    assert mode(store.credential_path) == 0o600 and mode(store.directory) == 0o700


def test_default_config_directory() -> None:
    assert default_dir({}, euid=0) == Path("/etc/ronda-agent")
    assert default_dir({"HOME": "/home/alice"}, euid=1000) == Path("/home/alice/.config/ronda-agent")
    assert default_dir({"HOME": "/home/alice", "XDG_CONFIG_HOME": "/xdg"}, euid=1000) == Path("/xdg/ronda-agent")
    assert default_dir({"RONDA_AGENT_DIR": "/opt/agent"}, euid=0) == Path("/opt/agent")


def test_server_url_forms() -> None:
    assert normalize_server("https://ronda.example.com/") == "https://ronda.example.com"
    assert normalize_server("https://ronda.example.com/api/v1") == "https://ronda.example.com"
    assert normalize_server("https://example.com/ronda/api") == "https://example.com/ronda"
    with pytest.raises(ValueError, match="http"):
        normalize_server("ronda.example.com")


# --- reporting and the queue ----------------------------------------------------------------------


def test_report_is_gzipped_json_with_the_agent_credential(server: FakeRonda, tmp_path: Path) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    sent, result = agent.report_once()
    assert sent and result.sent == 1 and result.remaining == 0
    request = server.received[-1]
    assert request.path == REPORT
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-api-key"] == server.credential
    assert request.raw[:2] == b"\x1f\x8b"
    body = request.body
    assert body["device_name"] == "report-1" and body["os_type"] == "linux"
    assert set(body["security"]) >= {"disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date",
                                     "antivirus_enabled"}
    assert len(agent.queue) == 0


@pytest.mark.parametrize("failure", [503, 500, 429, DROP])
def test_unsendable_reports_are_queued_and_sent_oldest_first_later(
    server: FakeRonda, tmp_path: Path, failure: int
) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    server.fail(REPORT, failure, failure)
    assert agent.report_once()[0] is False
    assert agent.report_once()[0] is False
    queued = agent.queue.pending()
    assert len(queued) == 2
    assert all(mode(p) == 0o600 for p in queued) and mode(agent.queue.directory) == 0o700

    sent, result = agent.report_once()
    assert sent and (result.sent, result.remaining) == (3, 0)
    assert [r["device_name"] for r in server.reports()] == ["report-1", "report-2", "report-3"]
    assert len(agent.queue) == 0


def test_a_refused_report_is_dropped_not_retried(server: FakeRonda, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    server.fail(REPORT, 400)
    sent, result = agent.report_once()
    assert not sent and result.rejected == 1 and "HTTP 400" in (result.last_error or "")
    assert len(agent.queue) == 0
    assert "not retrying" in caplog.text
    assert agent.report_once()[0] is True
    assert server.count(REPORT) == 2  # the refused one was never sent again


def test_nothing_listening_queues_the_report(tmp_path: Path) -> None:
    server = FakeRonda()
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    server.stop()
    sent, result = agent.report_once()
    assert not sent and result.remaining == 1 and "Connect" in (result.last_error or "")


def test_the_queue_is_bounded_and_drops_the_oldest(server: FakeRonda, tmp_path: Path) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent", queue_limit=3)
    server.fail(REPORT, *[503] * 5)
    for _ in range(5):
        agent.report_once()
    assert len(agent.queue) == 3
    # The new report joins the full queue (dropping the oldest kept), then all three go out in order.
    assert agent.report_once()[0] is True
    assert [r["device_name"] for r in server.reports()] == ["report-4", "report-5", "report-6"]


def test_a_retry_stops_the_flush_so_order_is_kept(server: FakeRonda, tmp_path: Path) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    server.fail(REPORT, 503, 503)
    agent.report_once()
    agent.report_once()
    server.fail(REPORT, 200, 503)  # the oldest goes through, the next fails: it and the new one stay
    sent, result = agent.report_once()
    assert not sent and (result.sent, result.remaining) == (1, 2)
    assert [r["device_name"] for r in server.reports()] == ["report-1"]


# --- heartbeats and the run loop ------------------------------------------------------------------


def test_jitter_stays_within_ten_percent_and_varies() -> None:
    rng = random.Random(1)
    samples = [jittered(900, rng) for _ in range(2000)]
    assert 810 <= min(samples) < 830 and 970 < max(samples) <= 990
    assert len({round(s) for s in samples}) > 100


def test_heartbeat_can_change_the_intervals(server: FakeRonda, tmp_path: Path) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    server.heartbeat_answer = {"status": "ok", "heartbeat_interval": 45, "report_interval": 1800}
    assert agent.heartbeat()
    request = server.received[-1]
    assert request.path == HEARTBEAT and request.headers["x-api-key"] == server.credential
    assert request.body == {"agent_version": request.body["agent_version"]}
    reloaded, _ = agent.store.load()
    assert (reloaded.heartbeat_interval, reloaded.report_interval) == (45, 1800)


def test_run_reports_heartbeats_between_and_flushes_after_a_heartbeat(server: FakeRonda, tmp_path: Path) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    agent.config = replace(agent.config, heartbeat_interval=1, report_interval=60)
    server.fail(REPORT, 503)  # the first report cannot be delivered...
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not server.reports():
        time.sleep(0.05)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    paths = [r.path for r in server.received]
    # ...report (503), heartbeat (ok), then the queued report goes out without waiting 60 s.
    assert paths[1:4] == [REPORT, HEARTBEAT, REPORT], paths
    assert [r["device_name"] for r in server.reports()] == ["report-1"]
    assert len(agent.queue) == 0


def test_run_stops_promptly_when_told(server: FakeRonda, tmp_path: Path) -> None:
    agent, _ = enrolled_agent(server, tmp_path / "agent")
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not server.reports():
        time.sleep(0.05)
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1

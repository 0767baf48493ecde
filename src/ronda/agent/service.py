"""The agent's life: enrol once, then report every interval (with jitter) and heartbeat in between.

Every report goes through the on-disk queue: queue it, then send the queue oldest first. A report
the server cannot take now stays queued and goes out at the next successful contact (a report or
a heartbeat); one the server refuses for good (4xx other than 408/429) is logged and dropped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ronda.agent import AGENT_VERSION
from ronda.agent.client import Outcome, ServerClient, gzip_json, normalize_server
from ronda.agent.config import AgentConfig, ConfigStore
from ronda.agent.queue import ReportQueue

log = logging.getLogger("ronda.agent")
JITTER = 0.10


def jittered(interval: float, rng: random.Random) -> float:
    """interval ± 10%, so a fleet started together does not report in lockstep."""
    return interval * rng.uniform(1 - JITTER, 1 + JITTER)


def enroll(
    store: ConfigStore,
    server_url: str,
    token: str,
    identity: dict[str, Any],
    platform: str,
    *,
    ca_file: str | None = None,
    client: ServerClient | None = None,
) -> AgentConfig:
    server = normalize_server(server_url)
    facts = {
        "hostname": identity.get("hostname"),
        "serial_number": identity.get("serial_number"),
        "os_type": identity.get("os_type"),
        "os_version": identity.get("os_version"),
        "platform": platform,
        "agent_version": AGENT_VERSION,
        "mac": identity.get("mac"),
    }
    own = client is None
    client = client or ServerClient(server, ca_file=ca_file)
    try:
        answer = client.enroll(token, facts)
    finally:
        if own:
            client.close()
    config = AgentConfig.from_json(
        {
            "server_url": server,
            "agent_id": answer["agent_id"],
            "device_id": answer.get("device_id"),
            "tenant_id": answer.get("tenant_id"),
            "heartbeat_interval": answer.get("heartbeat_interval"),
            "report_interval": answer.get("report_interval"),
            "ca_file": ca_file,
            "enrolled_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    store.save(config, str(answer["credential"]))
    return config


@dataclass
class FlushResult:
    sent: int = 0
    rejected: int = 0
    remaining: int = 0
    last_error: str | None = None

    @property
    def complete(self) -> bool:
        return self.remaining == 0


class Agent:
    def __init__(
        self,
        store: ConfigStore,
        config: AgentConfig,
        client: ServerClient,
        collect: Callable[[], dict[str, Any]],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.config = config
        self.client = client
        self.collect = collect
        self.queue = ReportQueue(store, config.queue_limit)
        self.rng = rng or random.Random()  # jitter, not secrecy
        self.clock = clock

    def flush(self) -> tuple[FlushResult, dict[str, Outcome]]:
        """Send queued reports oldest first; stop at the first that must be retried."""
        result = FlushResult()
        outcomes: dict[str, Outcome] = {}
        pending = self.queue.pending()
        for index, path in enumerate(pending):
            try:
                body = path.read_bytes()
            except OSError as exc:
                log.warning("queued report %s is unreadable (%s); dropping it", path.name, exc)
                self.queue.remove(path)
                continue
            answer = self.client.send_report(body)
            outcomes[path.name] = answer.outcome
            if answer.outcome is Outcome.SENT:
                result.sent += 1
                self.queue.remove(path)
            elif answer.outcome is Outcome.REJECTED:
                result.rejected += 1
                result.last_error = f"HTTP {answer.status}: {answer.message}"
                log.error("the server refused report %s (HTTP %s): %s; not retrying", path.name, answer.status,
                          answer.message)
                self.queue.remove(path)
            else:
                result.remaining = len(pending) - index
                result.last_error = f"HTTP {answer.status}: {answer.message}" if answer.status else answer.message
                log.warning("report not sent (%s); %d report(s) stay queued", result.last_error, result.remaining)
                break
        return result, outcomes

    def report_once(self) -> tuple[bool, FlushResult]:
        """Collect, queue, send the queue. True when this report reached the server."""
        report = self.collect()
        report.setdefault("agent_version", AGENT_VERSION)
        path = self.queue.put(gzip_json(report))
        result, outcomes = self.flush()
        sent = outcomes.get(path.name) is Outcome.SENT
        log.info("report %s: %d sent, %d refused, %d queued", "sent" if sent else "not sent", result.sent,
                 result.rejected, result.remaining)
        return sent, result

    def heartbeat(self) -> bool:
        answer = self.client.heartbeat({"agent_version": AGENT_VERSION})
        if not answer.ok:
            log.warning("heartbeat failed (%s): %s", answer.status or "no answer", answer.message)
            return False
        self._adopt_intervals(answer.data)
        return True

    def _adopt_intervals(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        changed = False
        for name, minimum in (("heartbeat_interval", 5), ("report_interval", 10)):
            value = data.get(name)
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
            if valid and value != getattr(self.config, name):
                setattr(self.config, name, value)
                changed = True
        if changed:
            log.info("server set intervals: heartbeat %ss, report %ss", self.config.heartbeat_interval,
                     self.config.report_interval)
            self.store.save(self.config)

    def run(self, stop: threading.Event) -> None:
        """Report now, then every report_interval ± 10%, heartbeating in between, until stop is set."""
        next_report = self.clock()
        next_heartbeat = next_report + jittered(self.config.heartbeat_interval, self.rng)
        while not stop.is_set():
            now = self.clock()
            if now >= next_report:
                try:
                    self.report_once()
                except Exception:
                    log.exception("collecting or sending the report failed")
                next_report = self.clock() + jittered(self.config.report_interval, self.rng)
                next_heartbeat = self.clock() + jittered(self.config.heartbeat_interval, self.rng)
            elif now >= next_heartbeat:
                if self.heartbeat() and len(self.queue):
                    self.flush()
                next_heartbeat = self.clock() + jittered(self.config.heartbeat_interval, self.rng)
            stop.wait(max(0.0, min(next_report, next_heartbeat) - self.clock()))
        log.info("agent stopped")

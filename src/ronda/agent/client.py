"""Talking to the Ronda server: enrol, heartbeat, send a report.

Every answer is classified once: SENT (2xx), RETRY (no connection, timeout, 408, 429, 5xx: the
report stays queued) or REJECTED (any other 4xx: retrying would fail the same way, so it is
logged and dropped).
"""

from __future__ import annotations

import enum
import gzip
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx

from ronda.agent import AGENT_VERSION

log = logging.getLogger("ronda.agent")
API = "/api/v1"
USER_AGENT = f"ronda-agent/{AGENT_VERSION}"


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass
class Answer:
    outcome: Outcome
    status: int | None
    message: str
    data: Any = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT


class EnrollError(Exception):
    pass


def normalize_server(url: str) -> str:
    """https://ronda.example.com[/api[/v1]][/] -> https://ronda.example.com"""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"server URL must start with http:// or https:// (got {url!r})")
    return re.sub(r"(/api)?(/v1)?$", "", url)


def gzip_json(body: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=6)


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.SENT
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            details = error.get("details")
            return f"{error['message']}" + (f" {json.dumps(details)[:300]}" if details else "")
        if body.get("detail"):
            return str(body["detail"])[:300]
    return response.text[:300]


class ServerClient:
    def __init__(
        self,
        server_url: str,
        credential: str | None = None,
        *,
        ca_file: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = normalize_server(server_url) + API
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if credential:
            headers["X-API-Key"] = credential
        self.http = httpx.Client(
            headers=headers, timeout=timeout, verify=ca_file or True, transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _post(self, path: str, *, content: bytes, headers: dict[str, str]) -> Answer:
        try:
            response = self.http.post(self.base + path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return Answer(Outcome.RETRY, None, f"{type(exc).__name__}: {exc or 'connection failed'}")
        outcome = classify(response.status_code)
        data = None
        if outcome is Outcome.SENT:
            try:
                data = response.json()
            except ValueError:
                data = None
            return Answer(outcome, response.status_code, "ok", data)
        return Answer(outcome, response.status_code, _message(response))

    def enroll(self, token: str, facts: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"token": token, **facts}).encode()
        answer = self._post("/agents/enroll", content=body, headers={"Content-Type": "application/json"})
        if not answer.ok:
            where = f"HTTP {answer.status}" if answer.status else "no answer"
            raise EnrollError(f"enrolment failed ({where}): {answer.message}")
        data = answer.data
        if not isinstance(data, dict) or not data.get("credential") or not data.get("agent_id"):
            raise EnrollError("enrolment answer lacks agent_id or credential")
        return data

    def heartbeat(self, body: dict[str, Any]) -> Answer:
        return self._post("/agents/heartbeat", content=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})

    def send_report(self, gzipped: bytes) -> Answer:
        return self._post(
            "/devices/report",
            content=gzipped,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

"""A stand-in for the Ronda server's agent endpoints: a real HTTP server on 127.0.0.1 that records
what it receives and answers with the statuses a test scripts (including dropped connections).

It fakes the server, never the agent: the agent under test speaks real HTTP to it.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENROLL = "/api/v1/agents/enroll"
HEARTBEAT = "/api/v1/agents/heartbeat"
REPORT = "/api/v1/devices/report"
DROP = 0  # scripted "status": close the connection without answering


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    status: int


@dataclass
class FakeRonda:
    credential: str = "agc_test_credential_0123456789"
    heartbeat_interval: int = 30
    report_interval: int = 900
    heartbeat_answer: dict[str, Any] = field(default_factory=lambda: {"status": "ok"})
    received: list[Received] = field(default_factory=list)
    script: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                try:
                    body = json.loads(data)
                except ValueError:
                    body = None
                status = fake.next_status(self.path)
                fake.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw,
                                               body, status))
                if status == DROP:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                answer = fake.answer(self.path, status, body, self.headers.get("X-API-Key"))
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, path: str, *statuses: int) -> None:
        """The next requests to path get these statuses, in order; then success again."""
        self.script[path].extend(statuses)

    def next_status(self, path: str) -> int:
        if self.script[path]:
            return self.script[path].popleft()
        return 201 if path == ENROLL else 200

    def answer(self, path: str, status: int, body: Any, key: str | None) -> dict[str, Any]:
        if status >= 400:
            return {"detail": f"scripted {status}", "error": {"code": "SCRIPTED", "message": f"scripted {status}",
                                                            "details": None}}
        if path == ENROLL:
            return {"agent_id": "agt_fake1", "device_id": "dev_fake1", "credential": self.credential,
                    "tenant_id": "ten_fake1", "heartbeat_interval": self.heartbeat_interval,
                    "report_interval": self.report_interval}
        if key != self.credential:
            return {"detail": "bad key"}
        if path == HEARTBEAT:
            return self.heartbeat_answer
        return {"id": "dev_fake1", "compliance": {"status": "needs_review"}}

    def reports(self, *, delivered_only: bool = True) -> list[Any]:
        return [r.body for r in self.received if r.path == REPORT and (r.status == 200 or not delivered_only)]

    def count(self, path: str) -> int:
        return sum(1 for r in self.received if r.path == path)

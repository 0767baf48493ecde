"""TLS detection: a certificate made in the test, HTTP inside TLS, and TLS-wrapped greetings on odd ports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ronda.scanner.detect import identify_port
from tests.scanner.service_servers import (
    NOT_AFTER,
    NOT_BEFORE,
    greeting_handler,
    http_handler,
    make_tls_context,
    serve,
)


async def test_https_on_an_unusual_port_reports_certificate_and_http(tmp_path: Path) -> None:
    context = make_tls_context(tmp_path)
    async with serve(http_handler, tls=context) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert result.service == "https"
    assert (result.product, result.version) == ("nginx", "1.18.0")
    assert result.extra["http"]["title"] == "Ronda & Test Page"
    tls = result.extra["tls"]
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["subject"] == "CN=ronda-test.local,O=Ronda Test"
    assert tls["subject_cn"] == "ronda-test.local"
    assert tls["issuer"] == "CN=Ronda Test CA,O=Ronda Test"
    assert datetime.fromisoformat(tls["not_before"]) == NOT_BEFORE
    assert datetime.fromisoformat(tls["not_after"]) == NOT_AFTER
    assert tls["expired"] is False and tls["self_signed"] is False
    assert tls["san"] == ["ronda-test.local"]
    assert len(tls["sha256"]) == 64
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()  # stored as JSON by the scans API


async def test_expired_certificate_is_flagged(tmp_path: Path) -> None:
    expired = datetime(2026, 2, 1, tzinfo=UTC)
    context = make_tls_context(tmp_path, not_after=expired)
    async with serve(http_handler, tls=context) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert datetime.fromisoformat(result.extra["tls"]["not_after"]) == expired
    assert result.extra["tls"]["expired"] is True


async def test_smtp_inside_tls_is_smtps_like(tmp_path: Path) -> None:
    context = make_tls_context(tmp_path)
    greeting = b"220 mail.test.local ESMTP Exim 4.96 Ubuntu Mon, 23 Nov 2026 04:00:00 +0000\r\n"
    async with serve(greeting_handler(greeting), tls=context) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert result.service == "smtps"
    assert (result.product, result.version) == ("Exim smtpd", "4.96")
    assert result.cpe == ["cpe:2.3:a:exim:exim:4.96:*:*:*:*:*:*:*"]
    assert result.extra["tls"]["subject_cn"] == "ronda-test.local"

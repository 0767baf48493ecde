"""Request a report over HTTP and wait for it; read PDFs as text."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
from pypdf import PdfReader

from tests.conftest import Account

REPORTS = "/api/v1/reports"


async def request(client: httpx.AsyncClient, account: Account, kind: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{REPORTS}/{kind}", headers=account.headers, json=body)
    assert response.status_code == 202, response.text
    report = dict(response.json())
    assert report["status"] in ("pending", "running", "completed")
    assert response.headers["location"] == f"{REPORTS}/{report['id']}"
    return report


async def wait(client: httpx.AsyncClient, account: Account, report_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"{REPORTS}/{report_id}", headers=account.headers)
        assert response.status_code == 200, response.text
        report = dict(response.json())
        if report["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.1)


async def generate(client: httpx.AsyncClient, account: Account, kind: str, **body: Any) -> tuple[dict[str, Any],
                                                                                                 httpx.Response]:
    """Request, wait until completed, download."""
    report = await wait(client, account, (await request(client, account, kind, **body))["id"])
    assert report["status"] == "completed", report
    download = await client.get(report["download_url"], headers=account.headers)
    assert download.status_code == 200, download.text
    return report, download


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() or "" for page in reader.pages)

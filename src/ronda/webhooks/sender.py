"""One attempt at one delivery: check where the URL points now, POST the signed body, time it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from ronda import __version__
from ronda.webhooks import signing, url_safety

USER_AGENT = f"Ronda-Webhooks/{__version__}"
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status_code: int | None
    duration_ms: int | None
    error: str | None


def build_client(timeout: float) -> httpx.AsyncClient:
    # No redirects (a 3xx could point anywhere, past the address check), no proxies from the
    # environment (the address check is about where the request really goes), and no kept-alive
    # connections: the pool is keyed by address, and a TLS connection verified for one host name
    # must not carry a request for another name that resolves to the same address.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": USER_AGENT},
    )


def headers_for(delivery_id: str, event_type: str, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        signing.SIGNATURE_HEADER: signing.sign(secret, body),
        signing.EVENT_HEADER: event_type,
        signing.DELIVERY_HEADER: delivery_id,
    }


async def send(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes, allow_private: bool, limit: float
) -> Outcome:
    """POST `body`, connecting to the address that passed the check (not to a second lookup), within
    `limit` seconds in all (httpx's timeouts are per read: a receiver trickling bytes would outlast them)."""
    try:
        target = url_safety.parse(url)
        address = await url_safety.pinned_address(target, allow_private)
    except url_safety.UnsafeURL as exc:
        return Outcome(False, None, None, f"refused: {exc}"[:MAX_ERROR])
    pinned = target.url.copy_with(host=str(address))
    request_headers = {**headers, "Host": target.url.netloc.decode("ascii")}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit), client.stream(
            "POST", pinned, content=body, headers=request_headers, extensions={"sni_hostname": target.host}
        ) as response:
            status = response.status_code  # the body is never read: a receiver cannot make us buffer it
    except (httpx.TimeoutException, TimeoutError):
        return Outcome(False, None, _ms(started), "timed out")
    except httpx.HTTPError as exc:
        return Outcome(False, None, _ms(started), f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
    duration = _ms(started)
    if 200 <= status < 300:
        return Outcome(True, status, duration, None)
    reason = "redirects are not followed" if 300 <= status < 400 else "non-2xx response"
    return Outcome(False, status, duration, f"HTTP {status} ({reason})")


def _ms(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))

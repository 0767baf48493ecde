"""Where a webhook may point: http(s) only, never link-local or cloud-metadata addresses.

The check runs twice: at creation (a clean 400) and again at every delivery on the addresses the
name resolves to then, and the request goes to the very address that was checked (DNS rebinding:
a name that resolved to a public address yesterday may resolve to 169.254.169.254 today).
Private and loopback addresses are allowed unless RONDA_WEBHOOK_ALLOW_PRIVATE=off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT = 5.0
# Instance-metadata and host-agent endpoints of the big clouds (AWS, AWS IPv6, ECS, Alibaba, Azure).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "168.63.129.16",
))
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.com"})
# Carrier-grade NAT space is not "private" to Python's ipaddress, but it is not the internet either.
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")


class UnsafeURL(Exception):
    """The URL may not receive webhooks; the message says why, for the client."""


@dataclass(frozen=True, slots=True)
class Target:
    url: httpx.URL
    host: str
    port: int


def parse(url: str) -> Target:
    """http or https with a host; anything else is refused."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs can receive webhooks")
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise UnsafeURL("the URL has no host")
    if host in METADATA_HOSTS:
        raise UnsafeURL(f"{host} is a cloud metadata service")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(parsed, host, port)


def redacted(url: str) -> str:
    """The URL for the audit log: a password in it (https://user:pass@host/) is not repeated there."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return url
    return str(parsed.copy_with(username=parsed.username, password="***")) if parsed.password else url


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` may not receive a webhook, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_unspecified or address.is_multicast:
        return f"{address} is not a unicast address"
    private = address.is_private or address.is_loopback or address in SHARED_SPACE or not address.is_global
    if private and not allow_private:
        return f"{address} is a private address (RONDA_WEBHOOK_ALLOW_PRIVATE is off)"
    return None


def literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to now (an IP literal is itself)."""
    address = literal(host)
    if address is not None:
        return [address]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        raise LookupError(f"cannot resolve {host}: {exc}") from None
    out: list[IPAddress] = []
    for info in infos:
        candidate = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if candidate not in out:
            out.append(candidate)
    if not out:
        raise LookupError(f"cannot resolve {host}")
    return out


async def check_at_creation(url: str, allow_private: bool) -> Target:
    """Refuse a bad scheme or a host that is, or now resolves to, a refused address.

    A name that does not resolve yet is accepted: it is checked again at every delivery."""
    target = parse(url)
    try:
        addresses = await resolve(target.host, target.port)
    except LookupError:
        return target
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            raise UnsafeURL(reason)
    return target


async def pinned_address(target: Target, allow_private: bool) -> IPAddress:
    """At delivery: resolve, refuse if ANY address is refused, and return the one to connect to."""
    try:
        addresses = await resolve(target.host, target.port)
    except LookupError as exc:
        raise UnsafeURL(str(exc)) from None
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            raise UnsafeURL(reason if literal(target.host) else f"{target.host} resolves to {reason}")
    return addresses[0]

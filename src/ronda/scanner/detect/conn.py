"""Small connection helpers shared by the protocol probes: a deadline-bound stream pair."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from types import TracebackType

MAX_READ = 65536


def insecure_tls_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: we are identifying, not trusting."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Old servers (TLS 1.0, small keys) must still be identified.
    with contextlib.suppress(ValueError, ssl.SSLError):
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


class Deadline:
    """A fixed point in time; every wait below it gets only what is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        remaining = max(0.0, self.end - time.monotonic())
        return remaining if cap is None else min(cap, remaining)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end


class Conn:
    """One TCP (optionally TLS) connection whose reads never outlive the deadline."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: Deadline) -> None:
        self.reader = reader
        self.writer = writer
        self.deadline = deadline

    @classmethod
    async def open(
        cls, ip: str, port: int, deadline: Deadline, *, tls: ssl.SSLContext | None = None
    ) -> Conn:
        wait = deadline.left()
        if wait <= 0:
            raise TimeoutError
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_connection(
                ip, port, ssl=tls, server_hostname="" if tls is not None else None, limit=MAX_READ
            )
        return cls(reader, writer, deadline)

    async def __aenter__(self) -> Conn:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.2):
                await self.writer.wait_closed()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(max(self.deadline.left(), 0.001)):
            await self.writer.drain()

    async def read_some(self, wait: float | None = None) -> bytes:
        """Whatever arrives within `wait` (capped by the deadline): b"" on silence or EOF."""
        budget = self.deadline.left(wait)
        if budget <= 0:
            return b""
        try:
            async with asyncio.timeout(budget):
                return await self.reader.read(MAX_READ)
        except (TimeoutError, ConnectionError, OSError):
            return b""

    async def read_exactly(self, size: int) -> bytes:
        """`size` bytes or b"" on timeout/EOF."""
        budget = self.deadline.left()
        if budget <= 0:
            return b""
        try:
            async with asyncio.timeout(budget):
                return await self.reader.readexactly(size)
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            return b""

    async def read_until_quiet(self, first_wait: float, more_wait: float = 0.15, limit: int = 16384) -> bytes:
        """Read a first chunk, then keep reading while more follows quickly (multi-line banners)."""
        data = await self.read_some(first_wait)
        while data and len(data) < limit:
            chunk = await self.read_some(more_wait)
            if not chunk:
                break
            data += chunk
        return data

    async def read_line_reply(self, wait: float, done: bytes = b"\n", limit: int = 16384) -> bytes:
        """Read until `done` closes the reply (e.g. the last line of an SMTP multi-line reply)."""
        data = b""
        while len(data) < limit:
            chunk = await self.read_some(wait)
            if not chunk:
                break
            data += chunk
            if done_reply(data, done):
                break
        return data


def done_reply(data: bytes, done: bytes) -> bool:
    if done == b"\n":
        return data.endswith(b"\n")
    return done in data


def printable(data: bytes, limit: int = 512) -> str:
    """A banner as text: decoded leniently, control characters escaped, trimmed to `limit`."""
    text = data.decode("utf-8", errors="backslashreplace")
    cleaned = "".join(
        ch if ch.isprintable() or ch in "\r\n\t" else f"\\x{ord(ch):02x}" for ch in text
    ).strip()
    return cleaned[:limit]

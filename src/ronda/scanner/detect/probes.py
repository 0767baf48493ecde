"""Per-port identification: passive banner first, then protocol probes chosen by port and by what was seen."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from ronda.scanner.detect.banners import Ident, parse_text_banner
from ronda.scanner.detect.conn import Conn, Deadline
from ronda.scanner.detect.databases import parse_mysql_handshake, probe_postgres, probe_redis
from ronda.scanner.detect.http import parse_http_response, probe_http
from ronda.scanner.detect.messaging import parse_amqp_start, parse_nats, probe_amqp, probe_memcached, probe_mqtt
from ronda.scanner.detect.mongo import probe_mongodb
from ronda.scanner.detect.tls import IMPLICIT_TLS, open_tls, tls_details
from ronda.scanner.detect.windows import probe_rdp, probe_smb

Probe = Callable[[Conn, float], Awaitable[Ident | None]]

# Ports whose service waits for the client: a short passive wait, then this probe.
CLIENT_FIRST: dict[int, str] = {
    80: "http", 81: "http", 591: "http", 2375: "http", 3000: "http", 5000: "http", 5601: "http", 7001: "http",
    8000: "http", 8008: "http", 8080: "http", 8081: "http", 8088: "http", 8888: "http", 9000: "http",
    9090: "http", 9200: "http", 631: "http", 5985: "http", 10000: "http",
    5432: "postgresql", 6379: "redis", 5672: "amqp", 1883: "mqtt", 11211: "memcached", 27017: "mongodb",
    27018: "mongodb", 3389: "rdp", 445: "smb",
}
# Raw printing ports print whatever arrives (an HTTP probe becomes a wasted page): listen only, like nmap's
# "Exclude T:9100-9107".
PASSIVE_ONLY = frozenset(range(9100, 9108))
# Secure variants of the names of server-first protocols found inside TLS.
SECURE_NAMES = {"smtp": "smtps", "imap": "imaps", "pop3": "pop3s", "ftp": "ftps", "http": "https"}


async def _probe_http_ident(conn: Conn, wait: float) -> Ident | None:
    peer = str(conn.writer.get_extra_info("peername", ("localhost",))[0])
    ident, raw = await probe_http(conn, f"[{peer}]" if ":" in peer else peer, wait)
    if ident is None and raw:
        # Not HTTP: a slow server-first service (a late SMTP greeting) or one that errors on our GET.
        ident = identify_banner(raw)
    if ident is not None:
        ident.extra["_raw_head"] = raw.partition(b"\r\n\r\n")[0]
    return ident


PROBES: dict[str, Probe] = {
    "http": _probe_http_ident,
    "postgresql": probe_postgres,
    "redis": probe_redis,
    "mongodb": probe_mongodb,
    "rdp": probe_rdp,
    "smb": probe_smb,
    "amqp": probe_amqp,
    "mqtt": probe_mqtt,
    "memcached": probe_memcached,
}


def _identify_reply(data: bytes) -> Ident | None:
    """Replies to our HTTP probe from services that are not HTTP servers."""
    if data.startswith(b"-ERR") or data.startswith(b"-DENIED"):  # Redis answering "GET / ..." with an error
        return Ident("redis", "Redis", None, {"note": "answered the HTTP probe with a RESP error"})
    if data[:1] == b"\xff" and len(data) >= 3 and data[1] in (0xFB, 0xFC, 0xFD, 0xFE):  # telnet IAC option talk
        return Ident("telnet", None, None, {})
    if data.startswith(b"SSH-"):
        return parse_text_banner(data.decode("latin-1"))
    if data[:1] == b"E" and b"SFATAL" in data:  # PostgreSQL error packet
        return Ident("postgresql", "PostgreSQL", None, {})
    if data.startswith(b"AMQP"):  # an AMQP broker answering any garbage with its protocol header
        return parse_amqp_start(data)
    return None


def banner_complete(data: bytes) -> bool:
    """Stop waiting once a text banner's last line is final (not an "NNN-" continuation)."""
    if not data.endswith(b"\n"):
        length = int.from_bytes(data[:3], "little") if len(data) >= 4 else -1
        return length + 4 == len(data)  # a whole MySQL-style packet
    last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    return not re.match(rb"^\d{3}-", last)


async def read_banner(conn: Conn, wait: float) -> bytes:
    data = await conn.read_some(wait)
    while data and not banner_complete(data) and len(data) < 16384:
        more = await conn.read_some(0.3)
        if not more:
            break
        data += more
    return data


async def read_smtp_reply(conn: Conn, wait: float) -> bytes:
    data = b""
    while len(data) < 16384:
        chunk = await conn.read_some(wait)
        if not chunk:
            break
        data += chunk
        if data.endswith(b"\n") and re.search(rb"(?:^|\n)\d{3} [^\n]*\r?\n$", data):
            break
    return data


async def follow_up(conn: Conn, ident: Ident, wait: float) -> None:
    """Polite protocol steps after a banner: our SSH banner, EHLO for capabilities, then goodbye."""
    try:
        if ident.service == "ssh":
            await conn.send(b"SSH-2.0-ronda_scanner\r\n")
        elif ident.service == "smtp":
            await conn.send(b"EHLO ronda-scanner\r\n")
            reply = (await read_smtp_reply(conn, wait)).decode("utf-8", errors="replace")
            lines = [line[4:].strip() for line in reply.splitlines() if re.match(r"^250[ -]", line)]
            if lines:
                ident.extra["ehlo"] = lines[1:] if len(lines) > 1 else []
                ident.extra["starttls"] = any(line.upper() == "STARTTLS" for line in lines)
            await conn.send(b"QUIT\r\n")
        elif ident.service in ("ftp", "pop3"):
            await conn.send(b"QUIT\r\n")
        elif ident.service == "imap":
            await conn.send(b"a1 LOGOUT\r\n")
    except (TimeoutError, ConnectionError, OSError):
        pass


def identify_banner(data: bytes) -> Ident | None:
    ident = parse_mysql_handshake(data)
    if ident is not None:
        return ident
    text = data.decode("utf-8", errors="replace")
    return parse_text_banner(text) or parse_nats(text) or parse_http_response(data) or _identify_reply(data)


async def plain_identify(ip: str, port: int, deadline: Deadline, budget: float) -> tuple[Ident | None, bytes, bool]:
    """(identification, banner bytes, was_silent) over plain TCP; was_silent is False for passive-only ports."""
    hint = CLIENT_FIRST.get(port)
    conn = await Conn.open(ip, port, deadline)
    async with conn:
        passive = 0.25 if hint else 0.4 * budget
        data = await read_banner(conn, passive)
        if data:
            ident = identify_banner(data)
            if ident is not None:
                await follow_up(conn, ident, deadline.left(0.3 * budget))
            return ident, data, False
        if port in PASSIVE_ONLY:
            return None, b"", False
        # Silent: the probe this port suggests, on the same connection.
        probe = PROBES[hint] if hint else _probe_http_ident
        ident = await probe(conn, deadline.left(0.35 * budget))
    if ident is None and hint and hint != "http" and not deadline.expired:
        async with await Conn.open(ip, port, deadline) as conn:  # the hinted probe failed: maybe plain HTTP
            ident = await _probe_http_ident(conn, deadline.left(0.3 * budget))
    return ident, _raw_head(ident), True


def _raw_head(ident: Ident | None) -> bytes:
    if ident is None:
        return b""
    raw = ident.extra.pop("_raw_head", b"")
    return raw if isinstance(raw, bytes) else b""


TlsFound = tuple[Ident | None, bytes, dict[str, object]]


async def tls_identify(ip: str, port: int, deadline: Deadline, budget: float) -> TlsFound | None:
    """Identification inside TLS; None when the port does not complete a TLS handshake."""
    conn = await open_tls(ip, port, deadline)
    if conn is None:
        return None
    async with conn:
        details = tls_details(conn)
        inner = IMPLICIT_TLS.get(port, "")
        server_first = inner in ("smtps", "imaps", "pop3s", "ftps")
        data = await read_banner(conn, 0.4 * budget if server_first else 0.15)
        if data:
            ident = identify_banner(data)
            if ident is not None:
                await follow_up(conn, ident, deadline.left(0.2 * budget))
            return ident, data, details
        ident = await _probe_http_ident(conn, deadline.left(0.5 * budget))
    return ident, _raw_head(ident), details

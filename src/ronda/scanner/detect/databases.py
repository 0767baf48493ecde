"""Database identification: MySQL/MariaDB handshake, PostgreSQL SSLRequest + startup, Redis PING/INFO."""

from __future__ import annotations

import re
import struct
from typing import Any

from ronda.scanner.detect.banners import Ident, os_hint_from
from ronda.scanner.detect.conn import Conn
from ronda.scanner.detect.tls import tls_context, tls_details

# --- MySQL / MariaDB -----------------------------------------------------------------------------


def parse_mysql_handshake(data: bytes) -> Ident | None:
    """The initial handshake packet (protocol 10) or the error packet a refusing server sends."""
    if len(data) < 5:
        return None
    length = int.from_bytes(data[:3], "little")
    sequence = data[3]
    payload = data[4 : 4 + length]
    if sequence != 0 or length == 0 or length > 16384 or len(payload) < min(length, 5):
        return None
    if payload[0] == 0xFF and len(payload) >= 3:  # ERR packet: "Host ... is not allowed to connect"
        message = payload[3:].decode("utf-8", errors="replace")
        if message.startswith("#"):
            message = message[6:]
        if not re.search(r"mysql|mariadb|host|connect|allowed", message, re.I):
            return None
        product = "MariaDB" if "mariadb" in message.lower() else "MySQL"
        return Ident("mysql", product, None, {"error": message[:200]})
    if payload[0] != 10:
        return None
    end = payload.find(b"\x00", 1)
    if end < 2:
        return None
    raw = payload[1:end].decode("ascii", errors="replace")
    if not re.match(r"^\d+\.\d+", raw):
        return None
    extra: dict[str, Any] = {"server_version": raw, "protocol": 10}
    if len(payload) >= end + 5:
        extra["connection_id"] = struct.unpack("<I", payload[end + 1 : end + 5])[0]
    hint = os_hint_from(raw)
    if hint:
        extra["os_hint"] = hint
    if "mariadb" in raw.lower():
        # MariaDB < 11 prefixes "5.5.5-" so old replication clients accept it: "5.5.5-10.6.12-MariaDB-1..."
        trimmed = raw[6:] if raw.startswith("5.5.5-") else raw
        version = re.match(r"^(\d+\.\d+\.\d+)", trimmed)
        return Ident("mysql", "MariaDB", version.group(1) if version else None, extra)
    version = re.match(r"^(\d+\.\d+\.\d+)", raw)
    return Ident("mysql", "MySQL", version.group(1) if version else raw, extra)


# --- PostgreSQL ----------------------------------------------------------------------------------

SSL_REQUEST = struct.pack("!II", 8, 80877103)


def startup_message(user: str = "ronda-scan", database: str = "ronda-scan") -> bytes:
    body = struct.pack("!I", 196608)  # protocol 3.0
    for key, value in (("user", user), ("database", database), ("application_name", "ronda-scanner")):
        body += key.encode() + b"\x00" + value.encode() + b"\x00"
    body += b"\x00"
    return struct.pack("!I", len(body) + 4) + body


def parse_postgres_reply(data: bytes) -> Ident | None:
    """The first backend messages after a startup message: an auth request or an error (both prove PostgreSQL)."""
    if len(data) < 5 or data[0:1] not in (b"R", b"E"):
        return None
    extra: dict[str, Any] = {}
    version: str | None = None
    offset = 0
    while offset + 5 <= len(data):
        kind = data[offset : offset + 1]
        length = struct.unpack("!I", data[offset + 1 : offset + 5])[0]
        if length < 4 or length > 65536:
            return None
        body = data[offset + 5 : offset + 1 + length]
        if kind == b"R" and len(body) >= 4:
            code = struct.unpack("!I", body[:4])[0]
            extra["auth"] = {0: "ok", 3: "cleartext", 5: "md5", 10: "sasl"}.get(code, str(code))
            if code == 10:
                extra["sasl_mechanisms"] = [m.decode() for m in body[4:].split(b"\x00") if m]
        elif kind == b"E":
            fields = {
                part[:1].decode(): part[1:].decode("utf-8", errors="replace") for part in body.split(b"\x00") if part
            }
            extra["error"] = {"severity": fields.get("S"), "code": fields.get("C"), "message": fields.get("M")}
            if fields.get("C") is None and fields.get("S") is None:
                return None
        elif kind == b"S":  # ParameterStatus (only after a successful login)
            key, _, rest = body.partition(b"\x00")
            if key == b"server_version":
                version = rest.split(b"\x00")[0].decode()
        elif kind not in (b"K", b"Z", b"N", b"v"):
            break
        offset += 1 + length
    if version:
        match = re.match(r"^(\d+(?:\.\d+)*)", version)
        hint = os_hint_from(version)
        if hint:
            extra["os_hint"] = hint
        extra["server_version"] = version
        version = match.group(1) if match else version
    return Ident("postgresql", "PostgreSQL", version, extra)


async def probe_postgres(conn: Conn, wait: float) -> Ident | None:
    """SSLRequest first ('S'/'N' is already a strong sign), TLS when offered, then a startup message."""
    extra: dict[str, Any] = {}
    try:
        await conn.send(SSL_REQUEST)
        answer = await conn.read_some(wait)
        if answer[:1] not in (b"S", b"N") or len(answer) != 1:
            return None
        extra["ssl"] = answer == b"S"
        if answer == b"S":
            left = conn.deadline.left()
            if left <= 0:
                return Ident("postgresql", "PostgreSQL", None, extra)
            await conn.writer.start_tls(tls_context(), server_hostname="", ssl_handshake_timeout=left)
            extra["tls"] = tls_details(conn)
        await conn.send(startup_message())
        reply = await conn.read_until_quiet(wait, more_wait=0.1)
    except (TimeoutError, ConnectionError, OSError) as exc:
        # The S/N answer alone identifies the server; a failed TLS upgrade does not undo that.
        extra["probe_error"] = type(exc).__name__
        return Ident("postgresql", "PostgreSQL", None, extra)
    except Exception as exc:  # ssl.SSLError subclasses OSError; anything else: keep what we know
        extra["probe_error"] = type(exc).__name__
        return Ident("postgresql", "PostgreSQL", None, extra)
    ident = parse_postgres_reply(reply) or Ident("postgresql", "PostgreSQL", None, {})
    ident.extra = {**extra, **ident.extra}
    return ident


# --- Redis ---------------------------------------------------------------------------------------


def resp_command(*parts: str) -> bytes:
    out = f"*{len(parts)}\r\n".encode()
    for part in parts:
        raw = part.encode()
        out += b"$" + str(len(raw)).encode() + b"\r\n" + raw + b"\r\n"
    return out


def parse_redis_info(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


async def probe_redis(conn: Conn, wait: float) -> Ident | None:
    try:
        await conn.send(resp_command("PING"))
        pong = await conn.read_some(wait)
    except (TimeoutError, ConnectionError, OSError):
        return None
    if not (pong.startswith(b"+PONG") or pong.startswith(b"-NOAUTH") or pong.startswith(b"-DENIED")
            or pong.startswith(b"-ERR")):
        return None
    if pong.startswith(b"-ERR") and b"auth" not in pong.lower():
        return None
    extra: dict[str, Any] = {"auth_required": not pong.startswith(b"+PONG")}
    if pong.startswith(b"-"):
        extra["error"] = pong.decode(errors="replace").strip()[1:200]
        return Ident("redis", "Redis", None, extra)
    try:
        await conn.send(resp_command("INFO", "server"))
        info = await conn.read_line_reply(wait, done=b"\r\n\r\n")
    except (TimeoutError, ConnectionError, OSError):
        return Ident("redis", "Redis", None, extra)
    values = parse_redis_info(info.decode("utf-8", errors="replace"))
    product = "Valkey" if values.get("server_name") == "valkey" else "Redis"
    version = values.get("valkey_version") if product == "Valkey" else values.get("redis_version")
    for key in ("redis_mode", "os", "arch_bits", "tcp_port"):
        if key in values:
            extra[key] = values[key]
    hint = os_hint_from(values.get("os", ""))
    if values.get("os", "").lower().startswith("linux"):
        hint = hint or "Linux"
    if hint:
        extra["os_hint"] = hint
    return Ident("redis", product, version, extra)

"""Brokers and caches: NATS (INFO line), AMQP 0-9-1 (Connection.Start), MQTT (CONNACK), memcached (version)."""

from __future__ import annotations

import json
import re
from typing import Any

from ronda.scanner.detect.banners import Ident
from ronda.scanner.detect.conn import Conn

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def parse_nats(text: str) -> Ident | None:
    if not text.startswith("INFO {"):
        return None
    try:
        info = json.loads(text[5:].splitlines()[0])
    except (ValueError, IndexError):
        return None
    if not isinstance(info, dict) or "server_id" not in info:
        return None
    extra: dict[str, Any] = {k: info[k] for k in ("server_name", "go", "proto", "auth_required", "tls_required",
                                                   "jetstream") if k in info}
    version = info.get("version")
    return Ident("nats", "NATS server", str(version) if version else None, extra)


def _table_string(payload: bytes, key: bytes) -> str | None:
    """A long-string value from an AMQP field table: <len><key> 'S' <uint32 len><value>."""
    found = re.search(re.escape(bytes([len(key)]) + key) + rb"S(....)", payload, re.S)
    if not found:
        return None
    size = int.from_bytes(found.group(1), "big")
    value = payload[found.end() : found.end() + size]
    return value.decode("utf-8", errors="replace") if size < 256 and len(value) == size else None


def parse_amqp_start(data: bytes) -> Ident | None:
    if data.startswith(b"AMQP"):  # the server refused our version and told us its own
        return Ident("amqp", None, None, {"protocol_header": data[:8].hex()})
    # method frame (type 1) on channel 0, class 10 (connection) method 10 (start)
    if len(data) < 12 or data[0] != 1 or data[1:3] != b"\x00\x00" or data[7:11] != b"\x00\x0a\x00\x0a":
        return None
    extra: dict[str, Any] = {"amqp_version": f"{data[11]}-{data[12]}" if len(data) > 12 else None}
    platform = _table_string(data, b"platform")
    if platform:
        extra["platform"] = platform
    return Ident("amqp", _table_string(data, b"product"), _table_string(data, b"version"), extra)


async def probe_amqp(conn: Conn, wait: float) -> Ident | None:
    try:
        await conn.send(AMQP_HEADER)
        reply = await conn.read_until_quiet(wait, more_wait=0.1)
    except (TimeoutError, ConnectionError, OSError):
        return None
    return parse_amqp_start(reply)


# MQTT 3.1.1 CONNECT: clean session, keep-alive 10 s, client id "ronda-scan".
MQTT_CONNECT = bytes.fromhex("101600044d5154540402000a000a726f6e64612d7363616e")
_CONNACK_CODES = {0: "accepted", 1: "bad protocol", 2: "identifier rejected", 3: "unavailable",
                  4: "bad credentials", 5: "not authorized"}


async def probe_mqtt(conn: Conn, wait: float) -> Ident | None:
    try:
        await conn.send(MQTT_CONNECT)
        reply = await conn.read_some(wait)
        if len(reply) >= 4 and reply[0] == 0x20 and reply[1] == 2:
            await conn.send(b"\xe0\x00")  # DISCONNECT
    except (TimeoutError, ConnectionError, OSError):
        return None
    if len(reply) < 4 or reply[0] != 0x20 or reply[1] != 2:
        return None
    code = reply[3]
    return Ident("mqtt", None, None, {"connack": _CONNACK_CODES.get(code, str(code)), "auth_required": code in (4, 5)})


async def probe_memcached(conn: Conn, wait: float) -> Ident | None:
    try:
        await conn.send(b"version\r\n")
        reply = await conn.read_some(wait)
    except (TimeoutError, ConnectionError, OSError):
        return None
    match = re.match(rb"^VERSION (\S+)\r\n", reply)
    return Ident("memcache", "memcached", match.group(1).decode(errors="replace"), {}) if match else None

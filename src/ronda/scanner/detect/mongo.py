"""MongoDB identification: an OP_MSG `hello` then `buildInfo`, with a minimal BSON codec."""

from __future__ import annotations

import itertools
import struct
from typing import Any

from ronda.scanner.detect.banners import Ident
from ronda.scanner.detect.conn import Conn

OP_MSG = 2013
_REQUEST_IDS = itertools.count(1)


def bson_encode(doc: dict[str, Any]) -> bytes:
    """Encode the few value types our commands use (int, str, bool, nested dict)."""
    body = b""
    for key, value in doc.items():
        name = key.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        elif isinstance(value, str):
            raw = value.encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(raw)) + raw
        elif isinstance(value, dict):
            body += b"\x03" + name + bson_encode(value)
        else:
            raise TypeError(f"unsupported BSON value {type(value).__name__}")
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


_FIXED = {0x01: 8, 0x07: 12, 0x09: 8, 0x11: 8, 0x12: 8, 0x13: 16, 0x0A: 0, 0xFF: 0, 0x7F: 0}


def bson_decode(data: bytes, offset: int = 0) -> dict[str, Any]:
    """Decode a document; values of types we do not need are skipped when their size is known."""
    (size,) = struct.unpack_from("<i", data, offset)
    end = offset + size
    if size < 5 or end > len(data):
        raise ValueError("truncated BSON document")
    pos = offset + 4
    doc: dict[str, Any] = {}
    while pos < end - 1:
        kind = data[pos]
        name_end = data.index(b"\x00", pos + 1)
        key = data[pos + 1 : name_end].decode("utf-8", errors="replace")
        pos = name_end + 1
        if kind == 0x02:
            (length,) = struct.unpack_from("<i", data, pos)
            doc[key] = data[pos + 4 : pos + 4 + length - 1].decode("utf-8", errors="replace")
            pos += 4 + length
        elif kind in (0x03, 0x04):
            (length,) = struct.unpack_from("<i", data, pos)
            inner = bson_decode(data, pos)
            doc[key] = list(inner.values()) if kind == 0x04 else inner
            pos += length
        elif kind == 0x10:
            doc[key] = struct.unpack_from("<i", data, pos)[0]
            pos += 4
        elif kind == 0x12:
            doc[key] = struct.unpack_from("<q", data, pos)[0]
            pos += 8
        elif kind == 0x01:
            doc[key] = struct.unpack_from("<d", data, pos)[0]
            pos += 8
        elif kind == 0x08:
            doc[key] = data[pos] == 1
            pos += 1
        elif kind == 0x05:
            (length,) = struct.unpack_from("<i", data, pos)
            pos += 5 + length
        elif kind in _FIXED:
            doc[key] = None
            pos += _FIXED[kind]
        else:
            break  # an unknown type: its size is unknown, so stop with what we have
    return doc


def op_msg(command: dict[str, Any]) -> bytes:
    payload = struct.pack("<I", 0) + b"\x00" + bson_encode(command)
    header = struct.pack("<iiii", 16 + len(payload), next(_REQUEST_IDS), 0, OP_MSG)
    return header + payload


def parse_op_msg(data: bytes) -> dict[str, Any] | None:
    if len(data) < 21:
        return None
    length, _request, _response_to, opcode = struct.unpack_from("<iiii", data)
    if opcode != OP_MSG or length > len(data) or length < 21 or data[20] != 0:
        return None
    try:
        return bson_decode(data, 21)
    except (ValueError, struct.error):
        return None


async def _command(conn: Conn, command: dict[str, Any], wait: float) -> dict[str, Any] | None:
    await conn.send(op_msg(command))
    head = await conn.read_exactly(4)
    if len(head) < 4:
        return None
    (length,) = struct.unpack("<i", head)
    if length < 21 or length > 16 * 1024 * 1024:
        return None
    rest = await conn.read_exactly(length - 4)
    return parse_op_msg(head + rest) if rest else None


async def probe_mongodb(conn: Conn, wait: float) -> Ident | None:
    try:
        hello = await _command(conn, {"hello": 1, "$db": "admin"}, wait)
    except (TimeoutError, ConnectionError, OSError):
        return None
    if hello is None or ("maxWireVersion" not in hello and "ok" not in hello):
        return None
    extra: dict[str, Any] = {}
    for key in ("maxWireVersion", "isWritablePrimary", "setName", "msg"):
        if key in hello:
            extra[key] = hello[key]
    version: str | None = None
    try:
        build = await _command(conn, {"buildInfo": 1, "$db": "admin"}, wait)
    except (TimeoutError, ConnectionError, OSError):
        build = None
    if build and isinstance(build.get("version"), str):
        version = build["version"]
    elif build and build.get("errmsg"):
        extra["build_info_error"] = str(build["errmsg"])[:200]
    return Ident("mongodb", "MongoDB", version, extra)

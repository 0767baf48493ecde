"""RDP (X.224 connection request) and SMB (SMB2 NEGOTIATE) identification."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ronda.scanner.detect.banners import Ident
from ronda.scanner.detect.conn import Conn

# TPKT(4) + X.224 CR TPDU(7) + RDP_NEG_REQ(8) asking for TLS | CredSSP.
RDP_REQUEST = bytes.fromhex("030000130ee000000000000100080003000000")
_RDP_PROTOCOLS = {0: "rdp", 1: "tls", 2: "credssp", 4: "rdstls", 8: "credssp-early-user-auth"}


def parse_rdp_reply(data: bytes) -> Ident | None:
    if len(data) < 11 or data[0] != 3 or data[1] != 0 or data[5] & 0xF0 != 0xD0:  # TPKT + X.224 Connection Confirm
        return None
    extra: dict[str, Any] = {}
    if len(data) >= 19:
        kind = data[11]
        value = struct.unpack("<I", data[15:19])[0]
        if kind == 2:
            extra["selected_protocol"] = _RDP_PROTOCOLS.get(value, str(value))
            extra["nla"] = value in (2, 8)
        elif kind == 3:
            extra["negotiation_failure"] = value
    extra["os_hint"] = "Microsoft Windows"
    return Ident("ms-wbt-server", "Microsoft Terminal Services", None, extra)


async def probe_rdp(conn: Conn, wait: float) -> Ident | None:
    try:
        await conn.send(RDP_REQUEST)
        reply = await conn.read_some(wait)
    except (TimeoutError, ConnectionError, OSError):
        return None
    return parse_rdp_reply(reply)


# SMB2 dialects we offer (3.1.1 needs negotiate contexts; 3.0.2 is enough to identify).
_DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302)
_DIALECT_NAMES = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1", 0x02FF: "2.???"}


def smb2_negotiate_request() -> bytes:
    header = b"\xfeSMB" + struct.pack("<HHIHHIIQII Q", 64, 0, 0, 0, 1, 0, 0, 0, 0xFEFF, 0, 0) + b"\x00" * 16
    body = struct.pack("<HHHHI", 36, len(_DIALECTS), 1, 0, 0) + uuid.uuid4().bytes + b"\x00" * 8
    body += b"".join(struct.pack("<H", d) for d in _DIALECTS)
    message = header + body
    return struct.pack(">I", len(message)) + message  # NetBIOS session message header (type 0)


def _filetime(value: int) -> str | None:
    if value <= 0:
        return None
    try:
        return (datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)).isoformat()
    except OverflowError:
        return None


def parse_smb_reply(data: bytes) -> Ident | None:
    if len(data) < 8 or data[0] != 0:
        return None
    message = data[4:]
    if message.startswith(b"\xffSMB"):
        return Ident("microsoft-ds", None, None, {"smb1": True})
    if not message.startswith(b"\xfeSMB") or len(message) < 64 + 8:
        return None
    body = message[64:]
    extra: dict[str, Any] = {}
    if len(body) >= 64 and struct.unpack_from("<H", body, 0)[0] == 65:
        security_mode, dialect = struct.unpack_from("<HH", body, 2)
        extra["dialect"] = _DIALECT_NAMES.get(dialect, hex(dialect))
        extra["signing_required"] = bool(security_mode & 0x02)
        extra["server_guid"] = str(uuid.UUID(bytes_le=bytes(body[8:24])))
        system_time = struct.unpack_from("<Q", body, 40)[0]
        stamp = _filetime(system_time)
        if stamp:
            extra["system_time"] = stamp
    return Ident("microsoft-ds", None, None, extra)


async def probe_smb(conn: Conn, wait: float) -> Ident | None:
    try:
        await conn.send(smb2_negotiate_request())
        head = await conn.read_exactly(4)
        if len(head) < 4 or head[0] != 0:
            return None
        length = struct.unpack(">I", head)[0] & 0xFFFFFF
        if length > 65536:
            return None
        rest = await conn.read_exactly(length)
    except (TimeoutError, ConnectionError, OSError):
        return None
    return parse_smb_reply(head + rest) if rest else None

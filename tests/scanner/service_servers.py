"""Small real servers on loopback for the service-detection tests (each speaks its protocol for real)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(
    handler: Handler, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Run `handler` per connection on host:port (0: any free port); yields the port."""
    tasks: set[asyncio.Task[None]] = set()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, host, port, ssl=tls)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        if tasks:  # let handlers see the client's last words (and record them) before stopping them
            await asyncio.wait(list(tasks), timeout=1.0)
        for task in list(tasks):
            task.cancel()
        await server.wait_closed()


async def read_line(reader: asyncio.StreamReader, wait: float = 2.0) -> bytes:
    return await asyncio.wait_for(reader.readline(), wait)


# --- text protocols ------------------------------------------------------------------------------

SSH_BANNER = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"


def ssh_handler(received: list[bytes]) -> Handler:
    """Says its identification line, then reads the client's (RFC 4253 §4.2) and records it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SSH_BANNER)
        await writer.drain()
        received.append(await read_line(reader))

    return handle


HTML = b"<html><head><title>Ronda &amp; Test Page</title></head><body>hello</body></html>"


async def http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    if not request.startswith(b"GET / HTTP/1.1\r\n") or b"\r\nHost: " not in request:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        writer.write(
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.18.0 (Ubuntu)\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Length: " + str(len(HTML)).encode() + b"\r\nConnection: close\r\n\r\n" + HTML
        )
    await writer.drain()


def smtp_handler(commands: list[bytes]) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test.local ESMTP Postfix (Ubuntu)\r\n")
        await writer.drain()
        while True:
            line = await read_line(reader)
            if not line:
                return
            commands.append(line)
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"EHLO":
                writer.write(b"250-mail.test.local\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
                             b"250 8BITMIME\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()

    return handle


def greeting_handler(greeting: bytes, goodbye: bytes = b"221 Goodbye.\r\n") -> Handler:
    """FTP/POP3/IMAP style: a greeting, then one command answered with `goodbye`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        if await read_line(reader):
            writer.write(goodbye)
            await writer.drain()

    return handle


async def silent_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and never says anything; holds the connection until the client goes."""
    while await reader.read(4096):
        pass


# --- TLS -----------------------------------------------------------------------------------------

NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2036, 1, 1, tzinfo=UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ronda Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def make_tls_context(directory: Path, *, not_after: datetime = NOT_AFTER) -> ssl.SSLContext:
    """A server context with a leaf certificate for ronda-test.local signed by a test CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("Ronda Test CA")).issuer_name(_name("Ronda Test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE - timedelta(days=1)).not_valid_after(NOT_AFTER + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("ronda-test.local")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("ronda-test.local")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "leaf.pem", directory / "leaf.key"
    pem = serialization.Encoding.PEM
    cert_path.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


# --- binary protocols ----------------------------------------------------------------------------


def bson(doc: dict[str, object]) -> bytes:
    """Hand-rolled BSON for the fake server (int32, string, bool), independent of the scanner's codec."""
    body = b""
    for key, value in doc.items():
        name = key.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + name + bytes([value])
        elif isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        else:
            raw = str(value).encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(raw)) + raw
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


async def mongo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers OP_MSG hello and buildInfo like mongod 7.0 does (the fields the scanner reads)."""
    while True:
        header = await reader.readexactly(16)
        length, request_id, _, opcode = struct.unpack("<iiii", header)
        body = await reader.readexactly(length - 16)
        assert opcode == 2013 and body[4] == 0
        command = body[5:]
        if b"hello" in command[:16]:
            reply = {"helloOk": True, "isWritablePrimary": True, "maxWireVersion": 21, "ok": 1}
        elif b"buildInfo" in command[:20]:
            reply = {"version": "7.0.5", "gitVersion": "7809d71e84e314b497f282ea8aa06d7ded3eb205", "ok": 1}
        else:
            reply = {"ok": 0, "errmsg": "no such command"}
        payload = struct.pack("<I", 0) + b"\x00" + bson(reply)
        writer.write(struct.pack("<iiii", 16 + len(payload), request_id + 1000, request_id, 2013) + payload)
        await writer.drain()


async def rdp_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """X.224 Connection Confirm with an RDP_NEG_RSP selecting CredSSP (what Windows with NLA answers)."""
    request = await reader.readexactly(19)
    assert request[:2] == b"\x03\x00" and request[5] == 0xE0
    writer.write(bytes.fromhex("030000130ed000001234000200080002000000"))
    await writer.drain()


async def smb_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An SMB2 NEGOTIATE response choosing dialect 3.0.2 with signing required."""
    length = struct.unpack(">I", await reader.readexactly(4))[0]
    request = await reader.readexactly(length)
    assert request[:4] == b"\xfeSMB"
    header = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, 0, 1, 1, 0, 0, 0xFEFF, 0, 0) + b"\x00" * 16
    guid = bytes(range(16))
    filetime = int((datetime(2026, 11, 23, tzinfo=UTC) - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10**7)
    body = struct.pack("<HHHH", 65, 3, 0x0302, 0) + guid + struct.pack("<IIIIQQHHI", 0x2F, 1 << 23, 1 << 23,
                                                                         1 << 23, filetime, 0, 128, 0, 0) + b"\x00"
    message = header + body
    writer.write(struct.pack(">I", len(message)) + message)
    await writer.drain()

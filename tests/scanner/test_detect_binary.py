"""Binary protocols: the real Redis, PostgreSQL and MariaDB/MySQL here, and small MongoDB, RDP, SMB servers."""

from __future__ import annotations

import re
import socket

import pytest

from ronda.scanner.detect import identify_port
from tests.scanner.service_servers import mongo_handler, rdp_handler, serve, smb_handler


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def test_real_redis_ping_and_info() -> None:
    if not _listening(6379):
        pytest.skip("no Redis on 127.0.0.1:6379")
    result = await identify_port("127.0.0.1", 6379, timeout=2)
    assert result.service == "redis"
    assert result.product in ("Redis", "Valkey")
    if result.extra["redis"]["auth_required"]:
        assert result.version is None
    else:
        assert result.version and re.fullmatch(r"\d+\.\d+\.\d+", result.version)
        assert f"cpe:2.3:a:redis:redis:{result.version}:*:*:*:*:*:*:*" in result.cpe or result.product == "Valkey"


async def test_real_postgresql_sslrequest_and_startup() -> None:
    if not _listening(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    result = await identify_port("127.0.0.1", 5432, timeout=2)
    assert result.service == "postgresql"
    assert result.product == "PostgreSQL"
    details = result.extra["postgresql"]
    assert details["ssl"] in (True, False)
    assert "auth" in details or "error" in details  # the server answered our startup message
    assert result.cpe[0].startswith("cpe:2.3:a:postgresql:postgresql:")


async def test_real_mysql_or_mariadb_handshake() -> None:
    if not _listening(3306):
        pytest.skip("no MySQL/MariaDB on 127.0.0.1:3306")
    result = await identify_port("127.0.0.1", 3306, timeout=2)
    assert result.service == "mysql"
    assert result.product in ("MySQL", "MariaDB")
    if "server_version" in result.extra["mysql"]:
        assert result.version and re.fullmatch(r"\d+\.\d+\.\d+", result.version)
        vendor = "mariadb:mariadb" if result.product == "MariaDB" else "oracle:mysql"
        assert result.cpe[0] == f"cpe:2.3:a:{vendor}:{result.version}:*:*:*:*:*:*:*"


async def _on_real_port(handler, port: int, host: str = "127.0.0.2"):  # type: ignore[no-untyped-def]
    """These probes are chosen by port number, so the fake server must sit on the real port (another 127.x)."""
    try:
        async with serve(handler, host=host, port=port):
            return await identify_port(host, port, timeout=2)
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}:{port}: {exc}")


async def test_mongodb_hello_and_build_info() -> None:
    result = await _on_real_port(mongo_handler, 27017)
    assert (result.service, result.product, result.version) == ("mongodb", "MongoDB", "7.0.5")
    assert result.extra["mongodb"]["maxWireVersion"] == 21
    assert result.cpe == ["cpe:2.3:a:mongodb:mongodb:7.0.5:*:*:*:*:*:*:*"]


async def test_rdp_connection_confirm() -> None:
    result = await _on_real_port(rdp_handler, 3389)
    assert result.service == "ms-wbt-server"
    assert result.product == "Microsoft Terminal Services"
    assert result.extra["rdp"] == {"selected_protocol": "credssp", "nla": True}
    assert result.extra["os_hint"] == "Microsoft Windows"


async def test_smb2_negotiate() -> None:
    result = await _on_real_port(smb_handler, 445)
    assert result.service == "microsoft-ds"
    smb = result.extra["smb"]
    assert smb["dialect"] == "3.0.2"
    assert smb["signing_required"] is True
    assert smb["server_guid"] == "03020100-0504-0706-0809-0a0b0c0d0e0f"
    assert smb["system_time"].startswith("2026-11-23T00:00:00")


async def test_real_rabbitmq_connection_start() -> None:
    if not _listening(5672):
        pytest.skip("no AMQP broker on 127.0.0.1:5672")
    result = await identify_port("127.0.0.1", 5672, timeout=2)
    assert result.service == "amqp"
    assert result.extra["amqp"]["amqp_version"] == "0-9"
    if result.product == "RabbitMQ":
        assert result.version and result.cpe[0] == f"cpe:2.3:a:vmware:rabbitmq:{result.version}:*:*:*:*:*:*:*"


async def test_nats_info_line() -> None:
    async def nats(reader, writer):  # type: ignore[no-untyped-def]
        writer.write(b'INFO {"server_id":"NTEST","server_name":"n1","version":"2.10.7","go":"go1.21.5",'
                     b'"host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576,"proto":1}\r\n')
        await writer.drain()
        await reader.read(100)

    async with serve(nats) as port:
        result = await identify_port("127.0.0.1", port, timeout=2)
    assert (result.service, result.product, result.version) == ("nats", "NATS server", "2.10.7")
    assert result.extra["nats"]["server_name"] == "n1"


async def test_real_mqtt_broker_connack() -> None:
    if not _listening(1883):
        pytest.skip("no MQTT broker on 127.0.0.1:1883")
    result = await identify_port("127.0.0.1", 1883, timeout=2)
    assert result.service == "mqtt"
    assert result.extra["mqtt"]["connack"] in ("accepted", "not authorized", "bad credentials")


async def test_memcached_version() -> None:
    async def memcached(reader, writer):  # type: ignore[no-untyped-def]
        assert await reader.readline() == b"version\r\n"
        writer.write(b"VERSION 1.6.21\r\n")
        await writer.drain()

    result = await _on_real_port(memcached, 11211)
    assert (result.service, result.product, result.version) == ("memcache", "memcached", "1.6.21")
    assert result.cpe == ["cpe:2.3:a:memcached:memcached:1.6.21:*:*:*:*:*:*:*"]

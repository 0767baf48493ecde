"""Which open ports are risky or carry traffic in clear text (shared by compliance and the network report)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_

from ronda.devices.models import DevicePort

# port -> (service, risk, why). Risk levels follow the network report: critical, high, medium.
RISKY_PORTS: dict[int, tuple[str, str, str]] = {
    23: ("telnet", "critical", "Telnet: remote shell in clear text"),
    21: ("ftp", "high", "FTP: credentials and files in clear text"),
    69: ("tftp", "high", "TFTP: unauthenticated file transfer"),
    445: ("smb", "high", "SMB file sharing exposed"),
    139: ("netbios-ssn", "high", "NetBIOS/SMB session service exposed"),
    3389: ("rdp", "high", "Remote Desktop exposed"),
    5900: ("vnc", "high", "VNC remote desktop exposed"),
    5901: ("vnc", "high", "VNC remote desktop exposed"),
    5902: ("vnc", "high", "VNC remote desktop exposed"),
    3306: ("mysql", "high", "MySQL database exposed"),
    5432: ("postgresql", "high", "PostgreSQL database exposed"),
    1433: ("mssql", "high", "Microsoft SQL Server exposed"),
    1521: ("oracle", "high", "Oracle database exposed"),
    27017: ("mongodb", "high", "MongoDB database exposed"),
    6379: ("redis", "high", "Redis exposed"),
    9200: ("elasticsearch", "high", "Elasticsearch exposed"),
    11211: ("memcached", "high", "Memcached exposed"),
    512: ("rexec", "critical", "rexec: remote execution in clear text"),
    513: ("rlogin", "critical", "rlogin: remote login in clear text"),
    514: ("rsh", "critical", "rsh: remote shell in clear text"),
    161: ("snmp", "medium", "SNMP exposed"),
    2375: ("docker", "critical", "Docker API without TLS"),
}
RISKY_NAMES = ("telnet", "ftp", "tftp", "microsoft-ds", "smb", "netbios-ssn", "rdp", "ms-wbt-server", "vnc", "mysql",
               "postgresql", "ms-sql-s", "mssql", "oracle", "mongodb", "redis", "elasticsearch", "memcached")
# Protocols that carry data or credentials unencrypted.
CLEARTEXT_PORTS: dict[int, str] = {
    21: "ftp", 23: "telnet", 25: "smtp", 69: "tftp", 80: "http", 110: "pop3", 143: "imap", 161: "snmp",
    389: "ldap", 512: "rexec", 513: "rlogin", 514: "rsh", 1883: "mqtt", 2375: "docker", 5900: "vnc", 8000: "http",
    8080: "http", 8888: "http",
}
CLEARTEXT_NAMES = ("ftp", "telnet", "http", "pop3", "imap", "ldap", "snmp", "tftp", "mqtt", "vnc")


def _named(names: tuple[str, ...]) -> ColumnElement[bool]:
    return func.lower(func.coalesce(DevicePort.service, "")).in_(names)


def risky_clause() -> ColumnElement[bool]:
    return or_(and_(DevicePort.protocol == "tcp", DevicePort.port.in_(tuple(p for p in RISKY_PORTS if p != 161))),
               and_(DevicePort.port == 161, DevicePort.protocol == "udp"), _named(RISKY_NAMES))


def cleartext_clause() -> ColumnElement[bool]:
    ports = tuple(CLEARTEXT_PORTS)
    return or_(DevicePort.port.in_(ports), _named(CLEARTEXT_NAMES))


def describe_risk(port: int, service: str | None) -> tuple[str, str, str]:
    """(service, risk, why) for a port the clause matched."""
    if port in RISKY_PORTS:
        return RISKY_PORTS[port]
    name = (service or "").lower()
    return name or str(port), "high", f"{name or port} exposed"


def describe_cleartext(port: int, service: str | None) -> str:
    return CLEARTEXT_PORTS.get(port) or (service or str(port))


def port_label(port: int, protocol: str, service: str | None) -> str:
    return f"{port}/{protocol}" + (f" ({service})" if service else "")



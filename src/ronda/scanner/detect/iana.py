"""Service names from the IANA registry: the system's /etc/services, else a small shipped table."""

from __future__ import annotations

import socket
from functools import cache

# The common ports, so a host without /etc/services (slim containers) still names them.
FALLBACK: dict[int, str] = {
    20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "domain", 67: "bootps", 69: "tftp",
    80: "http", 88: "kerberos", 110: "pop3", 111: "sunrpc", 119: "nntp", 123: "ntp", 135: "msrpc",
    137: "netbios-ns", 139: "netbios-ssn", 143: "imap", 161: "snmp", 179: "bgp", 389: "ldap", 443: "https",
    445: "microsoft-ds", 465: "smtps", 514: "shell", 515: "printer", 548: "afp", 554: "rtsp", 587: "submission",
    631: "ipp", 636: "ldaps", 873: "rsync", 993: "imaps", 995: "pop3s", 1080: "socks", 1194: "openvpn",
    1433: "ms-sql-s", 1521: "oracle", 1723: "pptp", 1883: "mqtt", 2049: "nfs", 2375: "docker",
    2376: "docker-s", 3000: "ppp", 3268: "globalcatLDAP", 3306: "mysql", 3389: "ms-wbt-server", 5000: "upnp",
    5060: "sip", 5432: "postgresql", 5672: "amqp", 5900: "vnc", 5985: "wsman", 5986: "wsmans", 6379: "redis",
    6443: "sun-sr-https", 8000: "http-alt", 8008: "http", 8080: "http-proxy", 8443: "https-alt", 8883: "secure-mqtt",
    9000: "cslistener", 9090: "zeus-admin", 9100: "jetdirect", 9200: "wap-wsp", 11211: "memcache",
    27017: "mongodb", 62078: "iphone-sync",
}

# Where /etc/services has no entry or an unhelpful one, nmap-style names read better.
PREFERRED: dict[int, str] = {
    135: "msrpc", 445: "microsoft-ds", 3389: "ms-wbt-server", 5432: "postgresql", 6379: "redis",
    8080: "http-proxy", 9100: "jetdirect", 27017: "mongodb",
}


@cache
def iana_name(port: int, protocol: str = "tcp") -> str | None:
    if port in PREFERRED:
        return PREFERRED[port]
    try:
        return socket.getservbyport(port, protocol)
    except (OSError, OverflowError):
        return FALLBACK.get(port)

"""CPE 2.3 names (NISTIR 7695 formatted-string binding) for detected products.

`make_cpe` binds one name; `cpes_for_product` maps a product as our detectors (and nmap) name it to
every vendor:product pair NVD uses for it, so a CVE matcher finds the entries filed under old names too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

PARTS = frozenset({"a", "o", "h"})

# Unescaped in the formatted string: alphanumerics, "_", "-" and "."; every other printable character
# is quoted with a backslash (NISTIR 7695 §6.2.2.2). "*" and "?" are wildcards, so quoted too.
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]")


def escape_component(value: str | None) -> str:
    """Bind one attribute value: None/empty → "*" (ANY), "-" → NA, spaces → "_", lower case, quoted."""
    if value is None:
        return "*"
    text = value.strip().lower()
    if not text:
        return "*"
    if text == "-":
        return "-"
    text = re.sub(r"\s+", "_", text)
    out: list[str] = []
    for char in text:
        if _PLAIN.fullmatch(char):
            out.append(char)
        elif char.isprintable() and ord(char) < 128:
            out.append("\\" + char)
        # Non-ASCII or control characters have no place in a CPE name; drop them.
    return "".join(out) or "*"


def make_cpe(vendor: str, product: str, version: str | None, part: str = "a") -> str:
    """`cpe:2.3:part:vendor:product:version:*:*:*:*:*:*:*`; a version like "8.9p1" is kept whole."""
    if part not in PARTS:
        raise ValueError(f"CPE part must be one of a, o, h, not {part!r}")
    if not vendor.strip() or not product.strip():
        raise ValueError("CPE vendor and product must not be empty")
    fields = [part, escape_component(vendor), escape_component(product), escape_component(version)]
    return "cpe:2.3:" + ":".join(fields + ["*"] * 7)


# Product names as the detectors emit them (lower-cased) → NVD vendor:product pairs, the current
# naming first. Keep keys in the detectors' spelling: "apache httpd", "microsoft iis httpd", ...
PRODUCT_CPES: dict[str, tuple[tuple[str, str], ...]] = {
    "openssh": (("openbsd", "openssh"),),
    "openssh for windows": (("microsoft", "openssh_for_windows"), ("openbsd", "openssh")),
    "dropbear sshd": (("dropbear_ssh_project", "dropbear_ssh"),),
    "libssh": (("libssh", "libssh"),),
    "nginx": (("f5", "nginx"), ("nginx", "nginx")),
    "openresty": (("openresty", "openresty"),),
    "apache httpd": (("apache", "http_server"),),
    "apache tomcat": (("apache", "tomcat"),),
    "microsoft iis httpd": (("microsoft", "internet_information_services"), ("microsoft", "iis")),
    "lighttpd": (("lighttpd", "lighttpd"),),
    "caddy": (("caddyserver", "caddy"),),
    "jetty": (("eclipse", "jetty"),),
    "gunicorn": (("gunicorn", "gunicorn"),),
    "werkzeug": (("palletsprojects", "werkzeug"),),
    "uvicorn": (("encode", "uvicorn"),),
    "cups": (("apple", "cups"), ("openprinting", "cups")),
    "postfix smtpd": (("postfix", "postfix"),),
    "exim smtpd": (("exim", "exim"),),
    "sendmail": (("sendmail", "sendmail"),),
    "opensmtpd": (("openbsd", "opensmtpd"),),
    "microsoft exchange smtpd": (("microsoft", "exchange_server"),),
    "vsftpd": (("beasts", "vsftpd"),),
    "proftpd": (("proftpd", "proftpd"),),
    "pure-ftpd": (("pureftpd", "pure-ftpd"),),
    "filezilla ftpd": (("filezilla-project", "filezilla_server"),),
    "dovecot pop3d": (("dovecot", "dovecot"),),
    "dovecot imapd": (("dovecot", "dovecot"),),
    "cyrus imapd": (("cmu", "cyrus_imap_server"),),
    "cyrus pop3d": (("cmu", "cyrus_imap_server"),),
    "mysql": (("oracle", "mysql"), ("mysql", "mysql")),
    "mariadb": (("mariadb", "mariadb"),),
    "postgresql": (("postgresql", "postgresql"),),
    "redis": (("redis", "redis"), ("redislabs", "redis")),
    "mongodb": (("mongodb", "mongodb"),),
    "samba smbd": (("samba", "samba"),),
    "dnsmasq": (("thekelleys", "dnsmasq"),),
    "rabbitmq": (("vmware", "rabbitmq"), ("pivotal_software", "rabbitmq")),
    "memcached": (("memcached", "memcached"),),
    "nats server": (("linuxfoundation", "nats-server"),),
    "isc bind": (("isc", "bind"),),
}

# nmap product strings that differ from ours → our key (nmap -sV output goes through the same table).
_ALIASES: dict[str, str] = {
    "apache": "apache httpd",
    "apache http server": "apache httpd",
    "microsoft iis": "microsoft iis httpd",
    "microsoft-iis": "microsoft iis httpd",
    "postfix": "postfix smtpd",
    "exim": "exim smtpd",
    "dropbear": "dropbear sshd",
    "dropbear ssh": "dropbear sshd",
    "mysql server": "mysql",
    "postgresql db": "postgresql",
    "redis key-value store": "redis",
    "mongodb server": "mongodb",
    "filezilla server": "filezilla ftpd",
    "apache tomcat/coyote jsp engine": "apache tomcat",
    "pure-ftpd server": "pure-ftpd",
}


def product_key(product: str) -> str:
    key = " ".join(product.lower().split())
    return _ALIASES.get(key, key)


def cpes_for_product(product: str | None, version: str | None) -> list[str]:
    """Every known CPE name for a detected product (empty when the product is unknown to the table)."""
    if not product:
        return []
    pairs = PRODUCT_CPES.get(product_key(product), ())
    return [make_cpe(vendor, name, version) for vendor, name in pairs]


def uri_to_fs(uri: str) -> str | None:
    """A CPE 2.2 URI as nmap prints it (`cpe:/a:openbsd:openssh:8.9p1`) → a CPE 2.3 formatted string."""
    if not uri.lower().startswith("cpe:/"):
        return None
    parts = uri[5:].split(":")
    if not parts or parts[0] not in PARTS or len(parts) < 3 or not parts[1] or not parts[2]:
        return None
    values = [unquote(v) for v in parts[1:7]]
    values += [""] * (6 - len(values))  # vendor, product, version, update, edition, language
    fields = [parts[0], *(escape_component(v or None) for v in values)]
    return "cpe:2.3:" + ":".join(fields + ["*"] * 4)

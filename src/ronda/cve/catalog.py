"""Software names as inventories spell them -> the (vendor, product) NVD's CPE names use.

Package managers (dpkg, rpm, pacman, snap) name packages exactly, so most entries are a dictionary
look-up; application inventories (the Windows uninstall registry, macOS Applications) use display
names such as "Google Chrome" or "Mozilla Firefox (x64 en-US)", matched by the patterns below.
Scanned services name the product in their banner ("OpenSSH_8.9p1", "nginx/1.24.0"), read by
product_of_banner(). Anything not listed is not matched (no guessing from similar names).
"""

from __future__ import annotations

import re
from functools import lru_cache

Product = tuple[str, str]

_OPENSSH: Product = ("openbsd", "openssh")
_OPENSSL: Product = ("openssl", "openssl")
_HTTPD: Product = ("apache", "http_server")
_GLIBC: Product = ("gnu", "glibc")
_PYTHON: Product = ("python", "python")
_LOG4J: Product = ("apache", "log4j")
_CHROME: Product = ("google", "chrome")
_FIREFOX: Product = ("mozilla", "firefox")

PACKAGES: dict[str, Product] = {
    # ssh, tls, web servers
    "openssh": _OPENSSH, "openssh-server": _OPENSSH, "openssh-client": _OPENSSH, "openssh-clients": _OPENSSH,
    "openssh-sftp-server": _OPENSSH, "ssh": _OPENSSH,
    "openssl": _OPENSSL, "libssl3": _OPENSSL, "libssl3t64": _OPENSSL, "libssl1.1": _OPENSSL, "openssl-libs": _OPENSSL,
    "nginx": ("f5", "nginx"), "nginx-core": ("f5", "nginx"), "nginx-common": ("f5", "nginx"),
    "apache2": _HTTPD, "apache2-bin": _HTTPD, "httpd": _HTTPD, "apache": _HTTPD,
    "lighttpd": ("lighttpd", "lighttpd"), "haproxy": ("haproxy", "haproxy"), "squid": ("squid-cache", "squid"),
    "tomcat9": ("apache", "tomcat"), "tomcat10": ("apache", "tomcat"), "tomcat": ("apache", "tomcat"),
    # base system
    "curl": ("haxx", "curl"), "libcurl4": ("haxx", "curl"), "libcurl4t64": ("haxx", "curl"),
    "libcurl": ("haxx", "curl"),
    "sudo": ("sudo_project", "sudo"), "bash": ("gnu", "bash"), "glibc": _GLIBC, "libc6": _GLIBC, "libc-bin": _GLIBC,
    "xz-utils": ("tukaani", "xz"), "xz": ("tukaani", "xz"), "liblzma5": ("tukaani", "xz"),
    "zlib1g": ("zlib", "zlib"), "zlib": ("zlib", "zlib"), "systemd": ("systemd_project", "systemd"),
    "polkit": ("polkit_project", "polkit"), "policykit-1": ("polkit_project", "polkit"),
    "git": ("git-scm", "git"), "vim": ("vim", "vim"), "less": ("gnu", "less"), "tar": ("gnu", "tar"),
    "wget": ("gnu", "wget"), "rsync": ("samba", "rsync"), "samba": ("samba", "samba"),
    "bind9": ("isc", "bind"), "bind": ("isc", "bind"), "dnsmasq": ("thekelleys", "dnsmasq"),
    "exim4": ("exim", "exim"), "postfix": ("postfix", "postfix"), "dovecot-core": ("dovecot", "dovecot"),
    "vsftpd": ("beasts", "vsftpd"), "proftpd-basic": ("proftpd", "proftpd"), "proftpd": ("proftpd", "proftpd"),
    "ntp": ("ntp", "ntp"), "cups": ("openprinting", "cups"), "libxml2": ("xmlsoft", "libxml2"),
    "sqlite3": ("sqlite", "sqlite"), "libsqlite3-0": ("sqlite", "sqlite"), "gnutls-bin": ("gnu", "gnutls"),
    "libgnutls30": ("gnu", "gnutls"), "krb5-user": ("mit", "kerberos_5"), "libkrb5-3": ("mit", "kerberos_5"),
    "linux-image-generic": ("linux", "linux_kernel"), "kernel": ("linux", "linux_kernel"),
    # languages and runtimes
    "python3": _PYTHON, "python3.11": _PYTHON, "python3.12": _PYTHON, "python3.10": _PYTHON, "python": _PYTHON,
    "perl": ("perl", "perl"), "php": ("php", "php"), "php8.2": ("php", "php"), "nodejs": ("nodejs", "node.js"),
    "node": ("nodejs", "node.js"), "ruby": ("ruby-lang", "ruby"), "golang": ("golang", "go"),
    "openjdk-17-jre": ("oracle", "openjdk"), "openjdk-11-jre": ("oracle", "openjdk"),
    "log4j": _LOG4J, "liblog4j2-java": _LOG4J, "log4j-core": _LOG4J, "apache-log4j2": _LOG4J,
    # databases and infrastructure
    "postgresql": ("postgresql", "postgresql"), "postgresql-15": ("postgresql", "postgresql"),
    "postgresql-16": ("postgresql", "postgresql"), "mysql-server": ("oracle", "mysql"), "mysql": ("oracle", "mysql"),
    "mariadb-server": ("mariadb", "mariadb"), "redis-server": ("redis", "redis"), "redis": ("redis", "redis"),
    "mongodb-org": ("mongodb", "mongodb"), "docker-ce": ("docker", "docker"), "docker.io": ("docker", "docker"),
    "containerd": ("linuxfoundation", "containerd"), "runc": ("linuxfoundation", "runc"),
    "openvpn": ("openvpn", "openvpn"), "wireguard-tools": ("wireguard", "wireguard-tools"),
    # desktop applications (also their snap/flatpak ids)
    "google-chrome-stable": _CHROME, "chromium": ("google", "chromium"), "chromium-browser": ("google", "chromium"),
    "firefox": _FIREFOX, "firefox-esr": _FIREFOX, "org.mozilla.firefox": _FIREFOX,
    "thunderbird": ("mozilla", "thunderbird"), "zoom": ("zoom", "zoom"), "us.zoom.zoom": ("zoom", "zoom"),
    "libreoffice": ("libreoffice", "libreoffice"), "vlc": ("videolan", "vlc_media_player"),
    "code": ("microsoft", "visual_studio_code"), "slack": ("slack", "slack"),
    "teams": ("microsoft", "teams"), "7zip": ("7-zip", "7-zip"), "p7zip-full": ("7-zip", "7-zip"),
    "wireshark": ("wireshark", "wireshark"), "gimp": ("gimp", "gimp"), "keepassxc": ("keepassxc", "keepassxc"),
}

# Display names of application inventories (Windows, macOS): first pattern that matches wins.
DISPLAY_NAMES: tuple[tuple[re.Pattern[str], Product], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), product) for pattern, product in (
        (r"^google chrome\b", _CHROME),
        (r"^mozilla firefox\b|^firefox\b", _FIREFOX),
        (r"^mozilla thunderbird\b|^thunderbird\b", ("mozilla", "thunderbird")),
        (r"^zoom( workplace| client)?\b|^zoom\.us$", ("zoom", "zoom")),
        (r"^microsoft edge$", ("microsoft", "edge_chromium")),
        (r"^microsoft visual studio code\b|^visual studio code$", ("microsoft", "visual_studio_code")),
        (r"^7-zip\b", ("7-zip", "7-zip")),
        (r"^notepad\+\+", ("notepad-plus-plus", "notepad\\+\\+")),
        (r"^vlc( media player)?\b", ("videolan", "vlc_media_player")),
        (r"^python \d", _PYTHON),
        (r"^git( version|$)", ("git-scm", "git")),
        (r"^openssl\b", _OPENSSL),
        (r"^openssh\b", _OPENSSH),
        (r"^putty\b", ("putty", "putty")),
        (r"^winscp\b", ("winscp", "winscp")),
        (r"^wireshark\b", ("wireshark", "wireshark")),
        (r"^adobe acrobat reader\b|^adobe reader\b", ("adobe", "acrobat_reader_dc")),
        (r"^slack$", ("slack", "slack")),
        (r"^libreoffice\b", ("libreoffice", "libreoffice")),
        (r"^keepassxc$", ("keepassxc", "keepassxc")),
        (r"^node\.js$", ("nodejs", "node.js")),
        (r"^docker desktop$", ("docker", "desktop")),
    )
)

# Banners and version strings of scanned services: the product word before the version.
BANNERS: tuple[tuple[re.Pattern[str], Product], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), product) for pattern, product in (
        (r"\bopenssh[_ /-]?v?(\d[\w.]*)", _OPENSSH),
        (r"\bnginx[/ ]v?(\d[\w.]*)", ("f5", "nginx")),
        (r"\bapache(?: httpd)?[/ ](\d[\w.]*)", _HTTPD),
        (r"\bopenssl[/ ](\d[\w.]*)", _OPENSSL),
        (r"\blighttpd[/ ](\d[\w.]*)", ("lighttpd", "lighttpd")),
        (r"\bvsftpd ?(\d[\w.]*)", ("beasts", "vsftpd")),
        (r"\bproftpd ?(\d[\w.]*)", ("proftpd", "proftpd")),
        (r"\bexim ?(\d[\w.]*)", ("exim", "exim")),
        (r"\bpostfix\b.*?(\d[\w.]*)", ("postfix", "postfix")),
        (r"\bdropbear[_ ]?sshd?[_ ]?v?(\d[\w.]*)", ("dropbear_ssh_project", "dropbear_ssh")),
        (r"\bmysql\b.*?(\d+\.\d[\w.]*)", ("oracle", "mysql")),
        (r"\bredis\b.*?v?=?(\d+\.\d[\w.]*)", ("redis", "redis")),
    )
)


@lru_cache(maxsize=100_000)
def product_of(name: str) -> Product | None:
    """The (vendor, product) of an installed package or application name, or None."""
    key = name.strip().lower()
    if not key:
        return None
    found = PACKAGES.get(key)
    if found is not None:
        return found
    for pattern, product in DISPLAY_NAMES:
        if pattern.search(key):
            return product
    return None


def product_of_banner(text: str) -> tuple[Product, str] | None:
    """((vendor, product), version) read from a service banner or version string, or None."""
    for pattern, product in BANNERS:
        match = pattern.search(text)
        if match:
            return product, match.group(1)
    return None

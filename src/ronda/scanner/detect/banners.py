"""Product and version from the text a server says first (SSH, SMTP, FTP, POP3, IMAP).

Each parser takes the decoded banner and returns an `Ident` or None when the text is not that protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Distribution names that banners carry ("OpenSSH_8.9p1 Ubuntu-3", "Apache/2.4 (Debian)") → OS guess.
OS_WORDS: tuple[tuple[str, str], ...] = (
    ("ubuntu", "Ubuntu Linux"),
    ("debian", "Debian Linux"),
    ("raspbian", "Raspbian Linux"),
    ("centos", "CentOS Linux"),
    ("red hat", "Red Hat Enterprise Linux"),
    ("rhel", "Red Hat Enterprise Linux"),
    ("fedora", "Fedora Linux"),
    ("alpine", "Alpine Linux"),
    ("suse", "SUSE Linux"),
    ("gentoo", "Gentoo Linux"),
    ("freebsd", "FreeBSD"),
    ("openbsd", "OpenBSD"),
    ("netbsd", "NetBSD"),
    ("win32", "Microsoft Windows"),
    ("win64", "Microsoft Windows"),
    ("windows", "Microsoft Windows"),
    ("microsoft", "Microsoft Windows"),
    ("mikrotik", "MikroTik RouterOS"),
    ("routeros", "MikroTik RouterOS"),
    ("openwrt", "OpenWrt"),
    ("cisco", "Cisco IOS"),
)


# Package-version tags: "0+deb12u1", "1:10.6.12+maria~ubu2204", "8.0.35-1.el9", "Darwin".
_OS_TAGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[+~.-]deb\d+(?:u\d+)?\b|\bdeb\d+u\d+"), "Debian Linux"),
    (re.compile(r"~ubu\d{4}|ubuntu\d"), "Ubuntu Linux"),
    (re.compile(r"\.el\d+\b"), "Red Hat Enterprise Linux"),
    (re.compile(r"\bdarwin\b"), "Apple macOS"),
)


def os_hint_from(text: str) -> str | None:
    lowered = text.lower()
    for word, name in OS_WORDS:
        if word in lowered:
            return name
    for pattern, name in _OS_TAGS:
        if pattern.search(lowered):
            return name
    return None


@dataclass(slots=True)
class Ident:
    service: str
    product: str | None = None
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- SSH -----------------------------------------------------------------------------------------

_SSH = re.compile(r"^SSH-(?P<proto>\d+\.\d+)-(?P<software>[^\s\r\n]+)(?:[ \t]+(?P<comment>[^\r\n]*))?")
_SSH_PRODUCTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^OpenSSH_for_Windows_(?P<v>[\w.]+)", re.I), "OpenSSH for Windows"),
    (re.compile(r"^OpenSSH_(?P<v>[\w.]+)", re.I), "OpenSSH"),
    (re.compile(r"^dropbear_(?P<v>[\w.]+)", re.I), "Dropbear sshd"),
    (re.compile(r"^dropbear$", re.I), "Dropbear sshd"),
    (re.compile(r"^libssh[_-](?P<v>[\w.]+)", re.I), "libssh"),
    (re.compile(r"^Cisco-(?P<v>[\w.]+)", re.I), "Cisco SSH"),
    (re.compile(r"^ROSSSH$", re.I), "MikroTik RouterOS sshd"),
    (re.compile(r"^(?:Go|golang)$", re.I), "Go x/crypto/ssh"),
    (re.compile(r"^paramiko_(?P<v>[\w.]+)", re.I), "Paramiko"),
    (re.compile(r"^AsyncSSH_(?P<v>[\w.]+)", re.I), "AsyncSSH"),
)


def parse_ssh(text: str) -> Ident | None:
    match = _SSH.match(text)
    if not match:
        return None
    software = match.group("software")
    comment = (match.group("comment") or "").strip()
    extra: dict[str, Any] = {"protocol": match.group("proto"), "software": software}
    if comment:
        extra["comment"] = comment
    product: str | None = None
    version: str | None = None
    for pattern, name in _SSH_PRODUCTS:
        found = pattern.match(software)
        if found:
            product = name
            version = found.groupdict().get("v")
            break
    if product is None:
        # Unknown implementation: "Name_1.2" or "Name-1.2" still gives a product and version.
        generic = re.match(r"^(?P<p>[A-Za-z][\w]*?)[_-](?P<v>\d[\w.]*)$", software)
        product, version = (generic.group("p"), generic.group("v")) if generic else (software, None)
    hint = os_hint_from(comment) or ("Microsoft Windows" if product == "OpenSSH for Windows" else None)
    if product == "MikroTik RouterOS sshd":
        hint = "MikroTik RouterOS"
    if hint:
        extra["os_hint"] = hint
    return Ident("ssh", product, version, extra)


# --- SMTP ----------------------------------------------------------------------------------------

_SMTP_PRODUCTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bPostfix\b", re.I), "Postfix smtpd"),
    (re.compile(r"\bExim (?P<v>\d[\w.]*)", re.I), "Exim smtpd"),
    (re.compile(r"\bSendmail (?P<v>\d[\w.]*)", re.I), "Sendmail"),
    (re.compile(r"\bOpenSMTPD\b", re.I), "OpenSMTPD"),
    (re.compile(r"Microsoft ESMTP MAIL Service(?:, Version: (?P<v>[\d.]+))?", re.I), "Microsoft Exchange smtpd"),
    (re.compile(r"\bHaraka(?:/(?P<v>[\d.]+))?", re.I), "Haraka smtpd"),
    (re.compile(r"\bqmail\b", re.I), "qmail smtpd"),
    (re.compile(r"\bMailEnable\b", re.I), "MailEnable smtpd"),
)


def _first_match(text: str, table: tuple[tuple[re.Pattern[str], str], ...]) -> tuple[str | None, str | None]:
    for pattern, name in table:
        found = pattern.search(text)
        if found:
            return name, found.groupdict().get("v")
    return None, None


def parse_smtp(text: str) -> Ident | None:
    if not re.match(r"^220[ -]", text):
        return None
    if not re.search(r"SMTP|mail|Postfix|Exim|Sendmail", text, re.I):
        return None
    product, version = _first_match(text, _SMTP_PRODUCTS)
    extra: dict[str, Any] = {}
    hint = os_hint_from(text)
    if hint:
        extra["os_hint"] = hint
    return Ident("smtp", product, version, extra)


# --- FTP -----------------------------------------------------------------------------------------

_FTP_PRODUCTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\(vsFTPd (?P<v>[\w.]+)\)", re.I), "vsftpd"),
    (re.compile(r"\bvsFTPd\b", re.I), "vsftpd"),
    (re.compile(r"\bProFTPD (?P<v>\d[\w.]*)", re.I), "ProFTPD"),
    (re.compile(r"\bProFTPD\b", re.I), "ProFTPD"),
    (re.compile(r"\bPure-FTPd\b", re.I), "Pure-FTPd"),
    (re.compile(r"FileZilla Server(?: version)? (?P<v>\d[\w.]*)", re.I), "FileZilla ftpd"),
    (re.compile(r"\bMicrosoft FTP Service\b", re.I), "Microsoft ftpd"),
    (re.compile(r"\bpyftpdlib (?P<v>[\d.]+)", re.I), "pyftpdlib"),
)


def parse_ftp(text: str) -> Ident | None:
    if not re.match(r"^220[ -]", text):
        return None
    if re.search(r"SMTP|Postfix|Exim|Sendmail", text, re.I):
        return None
    product, version = _first_match(text, _FTP_PRODUCTS)
    if product is None and not re.search(r"FTP", text, re.I):
        return None
    extra: dict[str, Any] = {}
    hint = "Microsoft Windows" if product == "Microsoft ftpd" else os_hint_from(text)
    if hint:
        extra["os_hint"] = hint
    return Ident("ftp", product, version, extra)


# --- POP3 / IMAP ---------------------------------------------------------------------------------

def parse_pop3(text: str) -> Ident | None:
    if not text.startswith("+OK"):
        return None
    product, version = _first_match(text, (
        (re.compile(r"\bDovecot\b", re.I), "Dovecot pop3d"),
        (re.compile(r"Cyrus POP3 v?(?P<v>\d[\w.]*)", re.I), "Cyrus pop3d"),
        (re.compile(r"\bCourier\b", re.I), "Courier pop3d"),
        (re.compile(r"Microsoft Exchange", re.I), "Microsoft Exchange pop3d"),
    ))
    extra: dict[str, Any] = {}
    hint = os_hint_from(text)
    if hint:
        extra["os_hint"] = hint
    return Ident("pop3", product, version, extra)


def parse_imap(text: str) -> Ident | None:
    if not re.match(r"^\* (OK|PREAUTH)\b", text):
        return None
    product, version = _first_match(text, (
        (re.compile(r"\bDovecot\b", re.I), "Dovecot imapd"),
        (re.compile(r"Cyrus IMAP v?(?P<v>\d[\w.]*)", re.I), "Cyrus imapd"),
        (re.compile(r"\bCourier-IMAP\b", re.I), "Courier imapd"),
        (re.compile(r"Microsoft Exchange", re.I), "Microsoft Exchange imapd"),
    ))
    extra: dict[str, Any] = {}
    caps = re.search(r"\[CAPABILITY ([^\]]+)\]", text)
    if caps:
        extra["capabilities"] = caps.group(1).split()
    hint = os_hint_from(text.replace("Microsoft Exchange", "Microsoft"))
    if hint:
        extra["os_hint"] = hint
    return Ident("imap", product, version, extra)


def parse_vnc(text: str) -> Ident | None:
    """RFB handshake: "RFB 003.008\\n" (the protocol version; the product does not say its name)."""
    match = re.match(r"^RFB (\d{3})\.(\d{3})\n", text)
    if not match:
        return None
    return Ident("vnc", None, None, {"protocol": f"{int(match.group(1))}.{int(match.group(2))}"})


def parse_text_banner(text: str) -> Ident | None:
    """Try every text protocol that speaks first, most specific first."""
    for parser in (parse_ssh, parse_smtp, parse_ftp, parse_imap, parse_pop3, parse_vnc):
        ident = parser(text)
        if ident is not None:
            return ident
    return None

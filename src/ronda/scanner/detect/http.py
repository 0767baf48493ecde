"""HTTP identification: one GET, then the status, the Server header and the page <title>."""

from __future__ import annotations

import html
import re
from typing import Any

from ronda.scanner.detect.banners import Ident, os_hint_from
from ronda.scanner.detect.conn import Conn

# Server header token → our product name (matches nmap's naming so the CPE table serves both).
_SERVER_PRODUCTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^nginx(?:/(?P<v>[\w.]+))?", re.I), "nginx"),
    (re.compile(r"^openresty(?:/(?P<v>[\w.]+))?", re.I), "OpenResty"),
    (re.compile(r"^Apache-Coyote(?:/(?P<v>[\w.]+))?", re.I), "Apache Tomcat"),
    (re.compile(r"^Apache(?:/(?P<v>[\w.]+))?", re.I), "Apache httpd"),
    (re.compile(r"^Microsoft-IIS(?:/(?P<v>[\w.]+))?", re.I), "Microsoft IIS httpd"),
    (re.compile(r"^Microsoft-HTTPAPI(?:/(?P<v>[\w.]+))?", re.I), "Microsoft HTTPAPI httpd"),
    (re.compile(r"^lighttpd(?:/(?P<v>[\w.]+))?", re.I), "lighttpd"),
    (re.compile(r"^Caddy\b", re.I), "Caddy"),
    (re.compile(r"^Jetty\((?P<v>[\w.\-]+)\)", re.I), "Jetty"),
    (re.compile(r"^gunicorn(?:/(?P<v>[\w.]+))?", re.I), "gunicorn"),
    (re.compile(r"^uvicorn\b", re.I), "uvicorn"),
    (re.compile(r"^Werkzeug(?:/(?P<v>[\w.]+))?", re.I), "Werkzeug"),
    (re.compile(r"^CUPS(?:/(?P<v>[\w.]+))?", re.I), "CUPS"),
    (re.compile(r"^LiteSpeed\b", re.I), "LiteSpeed httpd"),
    (re.compile(r"^thttpd(?:/(?P<v>[\w.]+))?", re.I), "thttpd"),
    (re.compile(r"^Boa(?:/(?P<v>[\w.]+))?", re.I), "Boa httpd"),
    (re.compile(r"^mini_httpd(?:/(?P<v>[\w.]+))?", re.I), "mini_httpd"),
    (re.compile(r"^GoAhead", re.I), "GoAhead WebServer"),
    (re.compile(r"^RomPager(?:/(?P<v>[\w.]+))?", re.I), "Allegro RomPager"),
    (re.compile(r"^(?:Hikvision-Webs|DNVRS-Webs|App-webs)", re.I), "Hikvision IP camera httpd"),
    (re.compile(r"^SimpleHTTP(?:/(?P<v>[\w.]+))?", re.I), "SimpleHTTPServer"),
    (re.compile(r"^Python/(?P<v>[\w.]+) aiohttp", re.I), "aiohttp"),
)

_STATUS = re.compile(rb"^HTTP/(?P<ver>\d(?:\.\d)?) (?P<code>\d{3})(?: (?P<reason>[^\r\n]*))?")
_TITLE = re.compile(rb"<title[^>]*>(?P<t>.*?)</title>", re.I | re.S)


def http_request(host: str) -> bytes:
    return (
        f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ronda-scanner\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def parse_server_header(server: str) -> tuple[str | None, str | None]:
    for pattern, name in _SERVER_PRODUCTS:
        found = pattern.search(server.strip())
        if found:
            return name, found.groupdict().get("v")
    generic = re.match(r"^(?P<p>[A-Za-z][\w.\-]*)/(?P<v>\d[\w.\-]*)", server.strip())
    if generic:
        return generic.group("p"), generic.group("v")
    return (server.strip()[:80] or None), None


def parse_http_response(data: bytes) -> Ident | None:
    """Status, headers and title of a (possibly truncated) HTTP/1.x response; None if it isn't one."""
    status = _STATUS.match(data)
    if not status:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    headers: dict[str, str] = {}
    for raw in head.split(b"\r\n")[1:]:
        name, sep, value = raw.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    extra: dict[str, Any] = {"status": int(status.group("code"))}
    product: str | None = None
    version: str | None = None
    server = headers.get("server")
    if server:
        extra["server"] = server
        product, version = parse_server_header(server)
        hint = os_hint_from(server)
        if product == "Microsoft IIS httpd" or product == "Microsoft HTTPAPI httpd":
            hint = "Microsoft Windows"
        if hint:
            extra["os_hint"] = hint
    if "x-powered-by" in headers:
        extra["powered_by"] = headers["x-powered-by"]
    if "www-authenticate" in headers:
        extra["auth"] = headers["www-authenticate"][:200]
    if "location" in headers:
        extra["location"] = headers["location"][:300]
    if extra["status"] == 400 and re.search(rb"HTTPS (?:port|server)|speaks? TLS|TLS only", body, re.I):
        extra["tls_required"] = True  # "The plain HTTP request was sent to HTTPS port" (nginx), Go's wording
    title = _TITLE.search(body)
    if title:
        text = html.unescape(title.group("t").decode("utf-8", errors="replace"))
        extra["title"] = " ".join(text.split())[:200]
    return Ident("http", product, version, extra)


async def probe_http(conn: Conn, host: str, wait: float) -> tuple[Ident | None, bytes]:
    """Send one GET on an open connection; returns the identification and the raw head of the reply."""
    try:
        await conn.send(http_request(host))
    except (TimeoutError, ConnectionError, OSError):
        return None, b""
    data = b""
    while len(data) < 65536:
        chunk = await conn.read_some(wait)
        if not chunk:
            break
        data += chunk
        head_done = b"\r\n\r\n" in data
        if head_done and (re.search(rb"</title>", data, re.I) or len(data) > 16384):
            break
    return parse_http_response(data), data

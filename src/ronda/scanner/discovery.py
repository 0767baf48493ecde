"""Host discovery before the port sweep.

When privileged: ICMP echo over a raw socket, and ARP requests (IPv4) or Neighbour Solicitations
(IPv6) for addresses on directly attached networks. TCP connect probes to common ports for
everything else (and for everything when unprivileged). The kernel's neighbour table (filled by
our own traffic through ARP/NDP) adds MAC addresses and evidence of life. Loopback addresses are up
without probing.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import select
import shutil
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

from ronda.scanner.arp import ArpProber, NdpProber

DISCOVERY_PORTS = (80, 443, 22, 445)
_TCP_BATCH = 2048  # discovery sockets in flight at once
_PING_BURST = 256
_ALIVE_ERRORS = frozenset({0, errno.ECONNREFUSED, errno.ECONNRESET})
_DEAD_ERRORS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
_LIVE_NEIGHBOUR_STATES = frozenset({"REACHABLE", "DELAY", "PROBE", "PERMANENT", "NOARP"})


@dataclass(slots=True)
class Alive:
    ip: str
    rtt: float | None = None  # seconds
    ttl: int | None = None
    mac: str | None = None
    how: str = "tcp"  # icmp | arp (ARP or NDP) | tcp | neighbour (table) | loopback


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(ident: int, seq: int, v6: bool) -> bytes:
    kind = 128 if v6 else 8
    payload = b"ronda-discovery!"
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + payload  # the kernel fills in the ICMPv6 checksum
    return struct.pack("!BBHHH", kind, 0, _checksum(header + payload), ident, seq) + payload


def _raw(family: int, proto: int) -> socket.socket | None:
    try:
        sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, proto)
    except OSError:
        return None  # unprivileged: TCP probes only
    if family == socket.AF_INET6:
        # deliver only echo replies (type 129): set an ICMP6_FILTER blocking everything else
        blocked = [0xFFFFFFFF] * 8
        blocked[129 >> 5] &= ~(1 << (129 & 31))
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *blocked))
    return sock


def _onlink_v4() -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 networks attached directly to an interface (routes without a gateway) and that
    interface, from /proc/net/route."""
    nets: list[tuple[ipaddress.IPv4Network, str]] = []
    try:
        with open("/proc/net/route", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                parts = line.split()
                if len(parts) < 8 or parts[0] == "lo" or parts[2] != "00000000":
                    continue
                dest = ipaddress.IPv4Address(socket.ntohl(int(parts[1], 16)))
                mask = ipaddress.IPv4Address(socket.ntohl(int(parts[7], 16)))
                if int(mask):  # not a default route
                    nets.append((ipaddress.IPv4Network(f"{dest}/{mask}", strict=False), parts[0]))
    except (OSError, ValueError):
        return []
    return nets


def _onlink_v6() -> list[tuple[ipaddress.IPv6Network, str]]:
    """IPv6 prefixes attached directly to an interface (no next hop), from /proc/net/ipv6_route."""
    nets: list[tuple[ipaddress.IPv6Network, str]] = []
    try:
        with open("/proc/net/ipv6_route", encoding="ascii") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 10 or parts[9] == "lo" or int(parts[8], 16) & 0x2:  # RTF_GATEWAY
                    continue
                length = int(parts[1], 16)
                if parts[4] != "0" * 32 or not 0 < length < 128:
                    continue
                net = ipaddress.IPv6Network((int(parts[0], 16), length))
                if not (net.is_link_local or net.is_multicast):
                    nets.append((net, parts[9]))
    except (OSError, ValueError):
        return []
    return nets


def _interface_for(
    ip: str, nets: list[tuple[ipaddress.IPv4Network, str]] | list[tuple[ipaddress.IPv6Network, str]]
) -> str | None:
    address = ipaddress.ip_address(ip)
    for net, ifname in nets:
        if address.version == net.version and address in net:
            return ifname
    return None


def neighbours() -> dict[str, tuple[str | None, str]]:
    """The kernel's neighbour table: ip -> (mac, state). ``ip -j neigh`` when present, else /proc/net/arp."""
    import subprocess  # only here: keeps the module light to import

    table: dict[str, tuple[str | None, str]] = {}
    ip_tool = shutil.which("ip")
    if ip_tool:
        try:
            out = subprocess.run([ip_tool, "-j", "neigh", "show"], capture_output=True, timeout=5, check=False).stdout  # noqa: S603
            for entry in json.loads(out or b"[]"):
                states = entry.get("state") or []
                state = states[0] if states else ""
                mac = entry.get("lladdr")
                table[entry["dst"]] = (mac.lower() if mac else None, state)
            return table
        except (OSError, ValueError, subprocess.SubprocessError, KeyError):
            table.clear()
    try:
        with open("/proc/net/arp", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                parts = line.split()
                if len(parts) >= 4 and parts[3] != "00:00:00:00:00:00":
                    # 0x2 = complete; /proc/net/arp does not tell fresh from stale
                    table[parts[0]] = (parts[3].lower(), "STALE" if int(parts[2], 16) & 0x2 else "INCOMPLETE")
    except OSError:
        pass
    return table


def discover(
    addresses: list[str],
    *,
    timeout: float,
    stop: threading.Event | None = None,
    icmp: bool = True,
    sent: list[int] | None = None,
) -> dict[str, Alive]:
    """Which of ``addresses`` are up. Waits at most ``timeout`` after the last probe of a round (less
    once answers show how far away the hosts are), with a second ICMP round for the silent ones.
    ``sent`` (a one-item list) is incremented by the number of probes sent."""
    counter = sent if sent is not None else [0]
    stop = stop or threading.Event()
    alive: dict[str, Alive] = {}
    remote: list[str] = []
    for ip in addresses:
        if ip.startswith("127.") or (":" in ip and ipaddress.ip_address(ip).is_loopback):
            alive[ip] = Alive(ip, rtt=0.0, how="loopback")
        else:
            remote.append(ip)
    if not remote:
        return alive
    wanted = set(remote)
    dead: set[str] = set()
    ident = os.getpid() & 0xFFFF
    raw4 = _raw(socket.AF_INET, socket.IPPROTO_ICMP) if icmp else None
    raw6 = _raw(socket.AF_INET6, socket.IPPROTO_ICMPV6) if icmp else None
    raws = {s.fileno(): s for s in (raw4, raw6) if s is not None}
    # with ICMP, two TCP ports are enough (nmap's 443 and 80); without it, a few more. Hosts on a
    # directly attached IPv4 network need none: we ask them with ARP (as nmap does), which a host
    # that drops ICMP and TCP still answers
    tcp_ports = DISCOVERY_PORTS[:2] if raws else DISCOVERY_PORTS
    onlink = _onlink_v4() if raw4 is not None else []
    onlink6 = _onlink_v6() if raw6 is not None else []
    via: dict[str, str] = {}  # on-link address -> "4:<interface>" or "6:<interface>"
    for ip in remote:
        v6 = ":" in ip
        ifname = _interface_for(ip, onlink6 if v6 else onlink) if (onlink6 if v6 else onlink) else None
        if ifname is not None:
            via[ip] = f"{6 if v6 else 4}:{ifname}"
    arps: dict[str, ArpProber | NdpProber] = {}
    for key in sorted(set(via.values())):
        try:
            arps[key] = NdpProber(key[2:]) if key[0] == "6" else ArpProber(key[2:])
        except OSError:
            continue  # no such socket here: the kernel's own ARP/NDP and the neighbour table still work
    tcp_targets = [ip for ip in remote if via.get(ip) not in arps]
    pending_tcp: deque[tuple[str, int]] = deque((ip, port) for port in tcp_ports for ip in tcp_targets)
    tcp: dict[int, tuple[socket.socket, str, float]] = {}
    ep = select.epoll()
    for fd in raws:
        ep.register(fd, select.EPOLLIN)
    arp_fds = {prober.fileno(): prober for prober in arps.values()}
    for fd in arp_fds:
        ep.register(fd, select.EPOLLIN)
    sent_at: dict[str, float] = {}
    slowest = 0.0  # the slowest answer so far (s)
    batch = _TCP_BATCH

    def up(ip: str, rtt: float | None, how: str, ttl: int | None = None) -> None:
        nonlocal slowest
        if ip in alive:
            return
        alive[ip] = Alive(ip, rtt=rtt, ttl=ttl, how=how)
        if rtt:
            slowest = max(slowest, rtt)

    def ping(targets: list[str], seq: int) -> None:
        for index, ip in enumerate(targets):
            if index and index % _PING_BURST == 0:
                if stop.is_set():
                    return
                # pace big sweeps (about 10,000 echoes/s): neighbour tables and receive buffers stay sane
                pump(0.025)
            v6 = ":" in ip
            sock = raw6 if v6 else raw4
            if sock is None:
                continue
            prober = arps.get(via.get(ip, ""))
            try:
                sent_at[ip] = time.monotonic()
                if prober is not None:
                    prober.request(ip)
                    counter[0] += 1
                sock.sendto(_echo(ident, seq, v6), (ip, 0))
                counter[0] += 1
            except OSError as exc:
                if exc.errno in _DEAD_ERRORS:
                    dead.add(ip)

    def launch_tcp() -> None:
        nonlocal batch
        while pending_tcp and len(tcp) < batch:
            ip, port = pending_tcp.popleft()
            if ip in alive or ip in dead:
                continue
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            except OSError:
                pending_tcp.appendleft((ip, port))
                batch = max(16, len(tcp) // 2)
                return
            err = sock.connect_ex((ip, port))
            counter[0] += 1
            if err == errno.EINPROGRESS:
                tcp[sock.fileno()] = (sock, ip, time.monotonic())
                ep.register(sock.fileno(), select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP)
                continue
            sock.close()
            if err in _ALIVE_ERRORS:
                up(ip, 0.0, "tcp")
            elif err in _DEAD_ERRORS:
                dead.add(ip)

    def receive(sock: socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            ip = str(ipaddress.ip_address(peer[0].split("%")[0]))
            if ip not in wanted or (ip in alive and alive[ip].ttl is not None):
                continue
            ttl: int | None = None
            if sock is raw4:
                header = (data[0] & 0x0F) * 4
                icmp_type, _code, _sum, got_ident = struct.unpack("!BBHH", data[header : header + 6])
                if icmp_type != 0 or got_ident != ident:
                    continue
                ttl = data[8]
            else:
                icmp_type, _code, _sum, got_ident = struct.unpack("!BBHH", data[:6])
                if icmp_type != 129 or got_ident != ident:
                    continue
            if ip in alive:
                alive[ip].ttl = ttl  # found through ARP first: the echo reply still tells the TTL
                continue
            started = sent_at.get(ip)
            up(ip, time.monotonic() - started if started is not None else None, "icmp", ttl)

    def unsettled() -> set[str]:
        # hosts that answered only ARP may still send the echo reply that tells their TTL
        known = {ip for ip, a in alive.items() if a.how != "arp" or a.ttl is not None}
        return wanted - known - dead

    def patience(limit: float) -> float:
        # three times the slowest answer (at least 0.25 s), never more than the limit
        return min(limit, max(0.25, 3 * slowest)) if slowest else limit

    def wait_round(limit: float) -> None:
        last_launch = time.monotonic()
        while not stop.is_set():
            if pending_tcp:
                before = len(pending_tcp)
                launch_tcp()
                if len(pending_tcp) != before:
                    last_launch = time.monotonic()
            now = time.monotonic()
            wait = patience(limit)
            # a TCP probe unanswered for that long is given up (dead hosts answer only after ARP fails)
            for fd in [fd for fd, (_s, _ip, t0) in tcp.items() if now - t0 >= wait]:
                sock, _ip, _t0 = tcp.pop(fd)
                sock.close()
            if not pending_tcp and (now - last_launch >= wait or not unsettled()):
                return
            pump(0.02)

    def pump(wait: float) -> None:
        """Handle whatever answers arrive within ``wait`` seconds."""
        for fd, _ in ep.poll(wait):
            if fd in raws:
                receive(raws[fd])
                continue
            if fd in arp_fds:
                for ip, mac in arp_fds[fd].replies():
                    ip = str(ipaddress.ip_address(ip))
                    if ip in wanted and ip not in alive:
                        started = sent_at.get(ip)
                        up(ip, time.monotonic() - started if started is not None else None, "arp")
                        alive[ip].mac = mac
                continue
            sock, ip, t0 = tcp.pop(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            sock.close()
            if err in _ALIVE_ERRORS:
                up(ip, time.monotonic() - t0, "tcp")
            elif err in _DEAD_ERRORS:
                dead.add(ip)

    try:
        ping(remote, 1)
        wait_round(timeout)
        silent = [ip for ip in remote if ip not in alive and ip not in dead]
        if silent and raws and not stop.is_set():
            ping(silent, 2)
            wait_round(timeout / 2)
    finally:
        for sock, _ip, _t0 in tcp.values():
            sock.close()
        for sock in raws.values():
            sock.close()
        for prober in arps.values():
            prober.close()
        ep.close()
    # the neighbour table: MACs, and hosts that answered ARP/NDP but nothing else
    table = neighbours()
    for ip in remote:
        mac, state = table.get(ip, (None, ""))
        if ip in alive:
            alive[ip].mac = alive[ip].mac or mac
        elif mac and state in _LIVE_NEIGHBOUR_STATES and ip not in dead:
            alive[ip] = Alive(ip, mac=mac, how="neighbour")
    return alive

"""A small lab network in Linux network namespaces (used by test_topology.py and bench/scan_vs_nmap.py).

One namespace for the scanner (a bridge with ``<prefix>.1/24`` and ``fd00:77::1/64``) and one per
host (``eth0`` with ``<prefix>.N/24`` and ``fd00:77::N/64``, dual-stack listeners on the given
ports). Every host link carries a delay each way and random loss: with ``tc netem`` where the
kernel has it, otherwise through a userspace wire (a process relaying Ethernet frames between two
TAP devices after the delay, dropping the lost ones), because some kernels (e.g. Firecracker
guests) ship without netem. Needs root; ``LabUnavailable`` says why when it cannot be built.
Everything is torn down on exit, also on errors.

    python netlab.py relay DELAY_MS LOSS TAP_A:TAP_B ...   (the userspace wire; run inside the scanner namespace)
    python netlab.py listen PORT ...                       (a listener; run inside a host namespace)
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import ipaddress
import os
import random
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
IPV6_PREFIX = "fd00:77::"


class LabUnavailable(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


class Lab:
    def __init__(
        self,
        hosts: dict[int, list[int]],
        *,
        delay_ms: float = 10.0,
        loss: float = 0.01,
        prefix: str = "10.77.0",
        ignore_ping: tuple[int, ...] = (),
    ) -> None:
        self.hosts = hosts  # last octet -> open ports
        self.ignore_ping = ignore_ping  # hosts that drop ICMP echo (found only through ARP or TCP)
        self.delay_ms = delay_ms
        self.loss = loss
        self.prefix = prefix
        tag = f"{os.getpid() % 100000}{random.randrange(100)}"
        self.scanner_ns = f"rl{tag}s"
        self.host_ns = {octet: f"rl{tag}h{octet}" for octet in hosts}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.namespaces: list[str] = []
        self.mode = ""

    @property
    def network(self) -> str:
        return f"{self.prefix}.0/24"

    def ip_of(self, octet: int) -> str:
        return f"{self.prefix}.{octet}"

    def ip6_of(self, octet: int) -> str:
        """The host's IPv6 address: the octet's digits read as hex (10 -> fd00:77::10)."""
        return str(ipaddress.ip_address(f"{IPV6_PREFIX}{octet}"))

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it in the scanner's namespace."""
        return ["ip", "netns", "exec", self.scanner_ns]

    def __enter__(self) -> Lab:
        if os.geteuid() != 0:
            raise LabUnavailable("network namespaces need root (run as root to include the topology)")
        if not shutil.which("ip"):
            raise LabUnavailable("iproute2's `ip` is not installed")
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _netns(self, name: str) -> None:
        result = _ip("netns", "add", name, check=False)
        if result.returncode != 0:
            raise LabUnavailable(f"cannot create a network namespace: {result.stderr.strip()}")
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _spawn(self, namespace: str, *args: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(HERE), *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise LabUnavailable(f"lab helper {args[0]} did not start")

    def _has_netem(self) -> bool:
        probe = subprocess.run(
            ["ip", "netns", "exec", self.scanner_ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],  # noqa: E501
            capture_output=True, check=False, timeout=20,
        )
        if probe.returncode == 0:
            subprocess.run(["ip", "netns", "exec", self.scanner_ns, "tc", "qdisc", "del", "dev", "lo", "root"],
                           capture_output=True, check=False, timeout=20)
        return probe.returncode == 0

    def _build(self) -> None:
        s = self.scanner_ns
        self._netns(s)
        _ip("-n", s, "link", "add", "br0", "type", "bridge")
        _ip("-n", s, "addr", "add", f"{self.prefix}.1/24", "dev", "br0")
        _ip("-n", s, "addr", "add", f"{IPV6_PREFIX}1/64", "dev", "br0", "nodad")
        _ip("-n", s, "link", "set", "br0", "up")
        self.mode = "netem" if shutil.which("tc") and self._has_netem() else "userspace wire"
        pairs: list[str] = []
        for octet, ns in self.host_ns.items():
            self._netns(ns)
            port_side, host_side = f"p{octet}", f"h{octet}"
            if self.mode == "netem":
                _ip("-n", s, "link", "add", port_side, "type", "veth", "peer", "name", "eth0", "netns", ns)
            pairs.append(f"{port_side}:{host_side}")
        if self.mode != "netem":
            # the wire creates both TAPs of each pair in the scanner namespace; the host ends move out
            self._spawn(s, "relay", str(self.delay_ms), str(self.loss), *pairs)
            for octet, ns in self.host_ns.items():
                _ip("-n", s, "link", "set", f"h{octet}", "netns", ns)
                _ip("-n", ns, "link", "set", f"h{octet}", "name", "eth0")
        netem = ["root", "netem", "delay", f"{self.delay_ms}ms", "loss", f"{self.loss * 100}%", "limit", "10000"]
        for octet, ns in self.host_ns.items():
            _ip("-n", s, "link", "set", f"p{octet}", "master", "br0")
            _ip("-n", s, "link", "set", f"p{octet}", "up")
            _ip("-n", ns, "addr", "add", f"{self.prefix}.{octet}/24", "dev", "eth0")
            _ip("-n", ns, "addr", "add", f"{IPV6_PREFIX}{octet}/64", "dev", "eth0", "nodad")
            _ip("-n", ns, "link", "set", "eth0", "up")
            if self.mode == "netem":
                for where, dev in ((s, f"p{octet}"), (ns, "eth0")):
                    subprocess.run(["ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, *netem],
                                   check=True, capture_output=True, timeout=20)
            if octet in self.ignore_ping:
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"],
                               check=True, capture_output=True, timeout=20)
            if self.hosts[octet]:
                self._spawn(ns, "listen", *map(str, self.hosts[octet]))
        # let the bridge ports come up (no STP on a fresh bridge, but links take a moment)
        time.sleep(0.3)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.procs.clear()
        for name in reversed(self.namespaces):
            _ip("netns", "del", name, check=False)
        self.namespaces.clear()


def _tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def relay(delay_ms: float, loss: float, pairs: list[str]) -> None:
    """Forward frames between each pair of TAPs after ``delay_ms``, dropping a ``loss`` share."""
    delay = delay_ms / 1000
    peer: dict[int, int] = {}
    for pair in pairs:
        a, b = pair.split(":")
        fa, fb = _tap(a), _tap(b)
        peer[fa], peer[fb] = fb, fa
    sel = selectors.DefaultSelector()
    for fd in peer:
        sel.register(fd, selectors.EVENT_READ)
    print("ready", flush=True)
    queue: list[tuple[float, int, int, bytes]] = []
    seq = 0
    rng = random.Random()
    while True:
        wait = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        for key, _ in sel.select(wait):
            fd = int(key.fd)
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if rng.random() >= loss:
                    seq += 1
                    heapq.heappush(queue, (time.monotonic() + delay, seq, peer[fd], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _due, _seq, out, frame = heapq.heappop(queue)
            with contextlib.suppress(OSError):  # the other end is down or full: the frame is lost
                os.write(out, frame)


def listen(ports: list[int]) -> None:
    """Accept and close connections on ``ports`` until killed."""
    sel = selectors.DefaultSelector()
    for port in ports:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)  # dual stack: IPv4 and IPv6
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(512)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            server = key.fileobj
            assert isinstance(server, socket.socket)
            try:
                conn, _addr = server.accept()
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    if sys.argv[1] == "relay":
        relay(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
    elif sys.argv[1] == "listen":
        listen([int(p) for p in sys.argv[2:]])

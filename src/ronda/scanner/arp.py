"""ARP requests over a raw packet socket and IPv6 Neighbour Solicitations (root only): fast host
discovery on attached networks.

The kernel resolves neighbours too, but retries a lost ARP exchange only after a second; asking
ourselves lets discovery retry at its own pace and learn MAC addresses straight from the replies."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

ETH_P_ARP = 0x0806
_SIOCGIFADDR, _SIOCGIFHWADDR = 0x8915, 0x8927
_BROADCAST = b"\xff" * 6


def _ifreq(sock: socket.socket, request: int, ifname: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", ifname.encode()[:15]))


class ArpProber:
    """One interface's ARP socket: ``request(ip)`` broadcasts who-has, ``replies()`` drains is-at answers."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.htons(ETH_P_ARP))
        try:
            self.sock.bind((ifname, ETH_P_ARP))
            self.mac = _ifreq(self.sock, _SIOCGIFHWADDR, ifname)[18:24]
            self.ip = _ifreq(self.sock, _SIOCGIFADDR, ifname)[20:24]
        except OSError:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, ip: str) -> None:
        target = ipaddress.IPv4Address(ip).packed
        frame = _BROADCAST + self.mac + struct.pack("!H", ETH_P_ARP)
        frame += struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + self.mac + self.ip + b"\0" * 6 + target
        self.sock.send(frame)

    def replies(self) -> list[tuple[str, str]]:
        """(ip, mac) of every ARP reply waiting on the socket."""
        found: list[tuple[str, str]] = []
        while True:
            try:
                frame = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return found
            if len(frame) < 42 or frame[12:14] != b"\x08\x06":
                continue
            op = struct.unpack("!H", frame[20:22])[0]
            if op != 2:
                continue
            sender_mac, sender_ip = frame[22:28], frame[28:32]
            found.append((str(ipaddress.IPv4Address(sender_ip)), ":".join(f"{b:02x}" for b in sender_mac)))

    def close(self) -> None:
        self.sock.close()


ICMP6_NS, ICMP6_NA = 135, 136


def _ifindex(ifname: str) -> int:
    return socket.if_nametoindex(ifname)


class NdpProber:
    """IPv6's ARP: Neighbour Solicitations to each target's solicited-node multicast address on one
    interface; ``replies()`` drains the Neighbour Advertisements (target address and MAC)."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.index = _ifindex(ifname)
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMPV6)
        try:
            # only advertisements reach this socket (ICMP6_FILTER: a set bit blocks that type)
            blocked = [0xFFFFFFFF] * 8
            blocked[ICMP6_NA >> 5] &= ~(1 << (ICMP6_NA & 31))
            self.sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *blocked))
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)  # NDP requires 255
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.index)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            self.mac = _ifreq(self.sock, _SIOCGIFHWADDR, ifname)[18:24]
        except OSError:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, ip: str) -> None:
        target = ipaddress.IPv6Address(ip).packed
        group = "ff02::1:ff" + f"{target[13]:02x}:{target[14]:02x}{target[15]:02x}"
        # type, code, checksum (the kernel fills it), reserved, target, option 1: our link-layer address
        message = struct.pack("!BBHI", ICMP6_NS, 0, 0, 0) + target + struct.pack("!BB", 1, 1) + self.mac
        self.sock.sendto(message, (group, 0, 0, self.index))

    def replies(self) -> list[tuple[str, str | None]]:
        found: list[tuple[str, str | None]] = []
        while True:
            try:
                data = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return found
            if len(data) < 24 or data[0] != ICMP6_NA:
                continue
            target = str(ipaddress.IPv6Address(data[8:24]))
            mac: str | None = None
            options = data[24:]
            while len(options) >= 8 and options[1]:
                size = options[1] * 8
                if options[0] == 2 and size >= 8:  # target link-layer address
                    mac = ":".join(f"{b:02x}" for b in options[2:8])
                options = options[size:]
            found.append((target, mac))

    def close(self) -> None:
        self.sock.close()

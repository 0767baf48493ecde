"""Real listening sockets on 127.x addresses for the scanner's tests."""

from __future__ import annotations

import os
import selectors
import socket
import threading
from types import TracebackType


class Listeners:
    """Listeners served by one thread: ``accept`` ones accept and close, ``silent`` ones accept and
    hold the connection without ever saying anything."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.held: list[socket.socket] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def open(self, ip: str, port: int = 0, *, silent: bool = False) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.listen(256)
        sock.setblocking(False)
        self.socks.append(sock)
        self.sel.register(sock, selectors.EVENT_READ, silent)
        return int(sock.getsockname()[1])

    def _serve(self) -> None:
        while not self.done.is_set():
            for key, _ in self.sel.select(0.05):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                if key.data:
                    self.held.append(conn)
                else:
                    conn.close()

    def __enter__(self) -> Listeners:
        return self

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        self.done.set()
        self.thread.join()
        for sock in self.socks + self.held:
            sock.close()
        self.sel.close()


def closed_port(ip: str) -> int:
    """A port on ``ip`` with nothing listening (bound and released)."""
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def child_pids() -> set[int]:
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children", encoding="ascii") as fh:
                pids.update(int(p) for p in fh.read().split())
        except OSError:
            continue
    return pids


def wildcard_listeners() -> set[int]:
    """TCP ports this machine listens on for every address (so on every 127.x too), from /proc."""
    ports: set[int] = set()
    tables = (("/proc/net/tcp", {"00000000"}), ("/proc/net/tcp6", {"0" * 32, "0000000000000000FFFF000000000000"}))
    for path, anys in tables:
        try:
            with open(path, encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    address, port = fields[1].split(":")
                    if fields[3] == "0A" and address in anys:
                        ports.add(int(port, 16))
        except OSError:
            continue
    return ports

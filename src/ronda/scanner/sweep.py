"""The port sweep: a tight non-blocking connect loop over epoll.

No asyncio tasks, futures or stream objects per port: each probe is one non-blocking socket, one
``connect_ex`` and (unless it settled inside the syscall, as loopback does) one epoll registration;
a refused socket is reused for the next probe. That is what makes a 65,535-port sweep cost about as
much CPU as nmap's. The loop runs in a thread (small sweeps) or in worker processes, one per core,
each sweeping a share of the ports (``sweep.py`` run as a script reads a JSON job on stdin and
writes result lines on stdout). Results travel as short text lines either way:

    U <ip> <rtt_ms>          the host answered something (first answer only)
    O <ip> <port> <rtt_ms>   an open port
    D <ip>                   every probe for this host is settled
    P <settled> <sent>       progress (ports settled, probes sent)
    E <settled> <sent>       the end
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import resource
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

# an answer that proves the host is there but the port is not open
_CLOSED = frozenset({errno.ECONNREFUSED, errno.ECONNRESET})
# the host (or the route to it) is gone: stop probing it
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
# out of local resources: put the probe back and lower concurrency
_LOCAL_PRESSURE = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL, errno.EAGAIN, errno.ENOMEM}
)
_OUT = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
_LINGER_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}: close with RST, no TIME_WAIT
PROGRESS_EVERY = 0.1
_TURN = 64  # probes launched for one host before moving to the next


@dataclass(slots=True)
class SweepJob:
    hosts: list[str]
    ports: list[int]
    max_concurrent: int = 1024
    per_host: int = 512
    timeout: float = 1.25  # ceiling for one probe (s)
    min_timeout: float = 0.1
    initial_timeout: float = 1.0
    retries: int = 2
    max_rate: float | None = None  # probes per second
    initial_rtt: dict[str, float] = field(default_factory=dict)  # ip -> rtt (s) known from discovery


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class _Host:
    """One target's probe queue and RTT estimator (RFC 6298 style, like nmap's)."""

    __slots__ = (
        "answered", "down", "family", "inflight", "ip", "next", "queued", "retry",
        "rttvar", "settled", "srtt",
    )

    def __init__(self, ip: str, initial_rtt: float | None) -> None:
        self.ip = ip
        self.family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.next = 0  # index of the next never-probed port
        self.retry: deque[tuple[int, int]] = deque()  # (port, tries so far)
        self.inflight = 0
        self.settled = 0
        self.queued = False
        self.answered = False
        self.down = False
        self.srtt: float | None = initial_rtt
        self.rttvar = initial_rtt / 2 if initial_rtt is not None else 0.0

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt


class Sweeper:
    def __init__(self, job: SweepJob, emit: Callable[[str], None]) -> None:
        self.job = job
        self.emit = emit
        self.stop = threading.Event()
        self.sent = 0
        self.settled = 0
        self.overall = _Host("0.0.0.0", None)  # noqa: S104 - not an address: the scan-wide RTT estimator

    def _timeout(self, host: _Host) -> float:
        """srtt + 4 * rttvar, clamped; hosts without answers yet borrow the scan-wide estimate."""
        job = self.job
        estimator = host if host.srtt is not None else self.overall
        if estimator.srtt is None:
            return min(job.initial_timeout, job.timeout)
        return min(job.timeout, max(job.min_timeout, estimator.srtt + 4 * estimator.rttvar))

    def run(self) -> None:
        job = self.job
        ports = job.ports
        nports = len(ports)
        hosts = [_Host(ip, job.initial_rtt.get(ip)) for ip in job.hosts]
        per_host = max(1, min(job.per_host, job.max_concurrent))
        max_conc = max(1, job.max_concurrent)
        ready: deque[_Host] = deque()
        for host in hosts:
            if nports:
                host.queued = True
                ready.append(host)
            else:
                self.emit(f"D {host.ip}")
        inflight: dict[int, tuple[socket.socket, _Host, int, float, int, int]] = {}
        deadlines: list[tuple[float, int, int]] = []
        ep = select.epoll()
        emit = self.emit
        started = time.monotonic()
        last_progress = started
        seq = 0
        new_socket = socket.socket
        stream = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
        sol, so_error = socket.SOL_SOCKET, socket.SO_ERROR
        in_progress, refused, already = errno.EINPROGRESS, errno.ECONNREFUSED, errno.EALREADY
        spare4: list[socket.socket] = []
        spare6: list[socket.socket] = []
        rate = job.max_rate

        def settle(host: _Host) -> None:
            host.settled += 1
            self.settled += 1
            if host.settled == nports:
                emit(f"D {host.ip}")

        def requeue(host: _Host) -> None:
            if not host.queued and not host.down and (host.retry or host.next < nports) and host.inflight < per_host:
                host.queued = True
                ready.append(host)

        def drop(host: _Host) -> None:
            # unreachable: every port not yet settled is settled now, unanswered
            host.down = True
            pending = nports - host.settled - host.inflight
            host.next = nports
            host.retry.clear()
            for _ in range(pending):
                settle(host)

        def answered(host: _Host, rtt: float) -> None:
            if not host.answered:
                host.answered = True
                emit(f"U {host.ip} {rtt * 1000:.3f}")

        def finish(sock: socket.socket, host: _Host, port: int, rtt: float, tries: int, err: int) -> None:
            """Classify one settled connect and close its socket."""
            if err == 0:
                try:
                    self_connect = sock.getsockname() == sock.getpeername()
                except OSError:  # reset already: it answered, so the host is there
                    self_connect, err = True, errno.ECONNRESET
                if self_connect:
                    # a TCP simultaneous open to our own address and port is not a listener
                    sock.close()
                    if err:
                        answered(host, rtt)
                    settle(host)
                    return
                sock.setsockopt(sol, socket.SO_LINGER, _LINGER_RST)
                sock.close()
                if rtt:
                    host.sample(rtt)
                    self.overall.sample(rtt)
                answered(host, rtt)
                emit(f"O {host.ip} {port} {rtt * 1000:.3f}")
                settle(host)
                return
            sock.close()
            if err in _CLOSED:
                if rtt:
                    host.sample(rtt)
                    self.overall.sample(rtt)
                answered(host, rtt)
                settle(host)
            elif err in _UNREACHABLE:
                settle(host)
                if not host.answered:
                    drop(host)
            elif tries < job.retries and err == errno.ETIMEDOUT:
                host.retry.append((port, tries + 1))
            else:
                settle(host)

        try:
            while not self.stop.is_set():
                now = time.monotonic()
                budget = max_conc - len(inflight)
                sent = self.sent
                pressed = False
                if rate is not None:
                    budget = min(budget, int(rate * (now - started)) + 1 - sent)
                while budget > 0 and ready:
                    host = ready.popleft()
                    host.queued = False
                    # a turn of several probes per host: fewer queue operations per probe
                    turn = min(budget, _TURN, per_host - host.inflight)
                    ip, v6 = host.ip, host.family == socket.AF_INET6
                    while turn > 0 and not host.down:
                        if host.retry:
                            port, tries = host.retry.popleft()
                        elif host.next < nports:
                            port, tries = ports[host.next], 0
                            host.next += 1
                        else:
                            break
                        pool = spare6 if v6 else spare4
                        try:
                            sock = pool.pop() if pool else new_socket(host.family, stream)
                        except OSError as exc:
                            host.retry.appendleft((port, tries))
                            if exc.errno in _LOCAL_PRESSURE:
                                max_conc = max(8, len(inflight) - 8)
                                pressed = True
                                budget = 0
                                break
                            raise
                        addr = (ip, port, 0, 0) if v6 else (ip, port)
                        err = sock.connect_ex(addr)
                        sent += 1
                        turn -= 1
                        budget -= 1
                        if err == in_progress:
                            # A second connect() tells how the first is doing, in one syscall:
                            # EALREADY still connecting, 0 (EISCONN) connected, or the first one's
                            # error. Loopback settles inside the first syscall. After a refusal that
                            # second call has also reset the socket, and Linux lets it connect again:
                            # reusing it saves a socket() and a close() per closed port.
                            err = sock.connect_ex(addr)
                            if err == refused:
                                if pool:
                                    sock.close()
                                else:
                                    pool.append(sock)
                                if not host.answered:
                                    answered(host, 0.0)
                                host.settled += 1  # settle(host), inlined on the hottest path
                                self.settled += 1
                                if host.settled == nports:
                                    emit(f"D {host.ip}")
                                continue
                            if err == already:
                                fd = sock.fileno()
                                seq += 1
                                t0 = time.monotonic()
                                inflight[fd] = (sock, host, port, t0, tries, seq)
                                heapq.heappush(deadlines, (t0 + self._timeout(host), seq, fd))
                                ep.register(fd, _OUT)
                                host.inflight += 1
                            else:
                                finish(sock, host, port, 0.0, tries, err)
                        elif err in _LOCAL_PRESSURE:
                            sock.close()
                            host.retry.appendleft((port, tries))
                            max_conc = max(8, len(inflight) - 8)
                            pressed = True
                            sent -= 1
                            budget = 0
                            break
                        else:
                            finish(sock, host, port, 0.0, tries, err)
                    self.sent = sent
                    requeue(host)
                if not inflight and not ready:
                    break
                if deadlines:
                    wait = max(0.0, min(deadlines[0][0] - time.monotonic(), PROGRESS_EVERY))
                else:
                    wait = PROGRESS_EVERY
                if ready and len(inflight) < max_conc and rate is None and not pressed:
                    wait = 0.0  # more to launch right away: just collect what is ready
                if pressed:  # out of sockets or local ports: give the kernel a moment, do not spin
                    wait, pressed = max(wait, 0.01), False
                if rate is not None and ready:
                    wait = min(wait, max(0.0, self.sent / rate - (time.monotonic() - started)) + 0.001)
                events = ep.poll(wait, max_conc)
                now = time.monotonic()
                for fd, _ in events:
                    sock, host, port, t0, tries, _seq = inflight.pop(fd)
                    host.inflight -= 1
                    finish(sock, host, port, now - t0, tries, sock.getsockopt(sol, so_error))
                    requeue(host)
                while deadlines and deadlines[0][0] <= now:
                    _deadline, seq_due, fd = heapq.heappop(deadlines)
                    probe = inflight.get(fd)
                    if probe is None or probe[5] != seq_due:
                        continue  # settled already (the fd may have been reused)
                    del inflight[fd]
                    sock, host, port, t0, tries, _seq = probe
                    sock.close()
                    host.inflight -= 1
                    if tries < job.retries and not host.down:
                        host.retry.append((port, tries + 1))
                    else:
                        settle(host)
                    requeue(host)
                if now - last_progress >= PROGRESS_EVERY:
                    last_progress = now
                    emit(f"P {self.settled} {self.sent}")
        finally:
            for sock, *_ in inflight.values():
                sock.close()
            for sock in spare4 + spare6:
                sock.close()
            inflight.clear()
            ep.close()
        emit(f"{'P' if self.stop.is_set() else 'E'} {self.settled} {self.sent}")


def job_to_json(job: SweepJob) -> str:
    # not dataclasses.asdict: it deep-copies the port list, which costs more than the sweep's setup
    return json.dumps({f.name: getattr(job, f.name) for f in fields(job)}, separators=(",", ":"))


def main() -> None:
    """Worker process: a JSON SweepJob on stdin, result lines on stdout."""
    raise_nofile()
    job = SweepJob(**json.loads(sys.stdin.buffer.read()))
    out = sys.stdout
    parent = os.getppid()
    buffer: list[str] = []
    last_flush = time.monotonic()

    def emit(line: str) -> None:
        nonlocal last_flush
        buffer.append(line)
        now = time.monotonic()
        if line[0] in "OPE" or now - last_flush >= PROGRESS_EVERY:
            out.write("\n".join(buffer) + "\n")
            out.flush()
            buffer.clear()
            last_flush = now
            if os.getppid() != parent:
                sweeper.stop.set()  # orphaned: the scan was abandoned

    sweeper = Sweeper(job, emit)
    sweeper.run()
    if buffer:
        out.write("\n".join(buffer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

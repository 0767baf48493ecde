"""Throwaway PostgreSQL and Redis servers of our own, so a fault test may stop and restart them.

Never the machine's shared servers (others' tests use them): a fresh cluster made by `initdb` in a
temporary directory (run as the `postgres` OS user, trust authentication, 127.0.0.1 only, its own
port), and `redis-server` with no persistence on a port of its own. Both are stopped and their files
removed when the context ends. `bench/faults.py` uses them too.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries installed, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def why_no_postgres() -> str:
    """Why an own PostgreSQL cannot be started here ("" when it can)."""
    if postgres_bin() is None:
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed"
    if os.geteuid() != 0:
        return "starting an own PostgreSQL needs root (to run initdb as the postgres user)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres OS user"
    return ""


def _wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster of our own; `stop`/`start`/`restart` are what the fault tests do to it."""

    data: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", *args]
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses={HOST}"
        self._ctl("-l", str(self.data / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def begin_smart_shutdown(self) -> None:
        """Ask for a smart shutdown and return at once: until its last client leaves, the server refuses
        new connections with "the database system is shutting down" (SQLSTATE 57P03)."""
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-W", "-m", "smart", "stop"]
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)
        deadline = time.monotonic() + 10
        ready = [str(self.bin / "pg_isready"), "-h", HOST, "-p", str(self.port), "-t", "2"]
        while subprocess.run(ready, capture_output=True).returncode != 1:  # 1: rejecting connections
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not begin shutting down")
            time.sleep(0.05)

    def wait_stopped(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while (self.data / "postmaster.pid").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not stop")
            time.sleep(0.05)

    def postmaster_signal(self, signum: int) -> None:
        """SIGSTOP freezes the postmaster: connections are accepted by the kernel, never answered."""
        os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signum)

    def restart(self, mode: str = "fast") -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses={HOST}"
        self._ctl("-m", mode, "-l", str(self.data / "server.log"), "-o", options, "restart")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    reason = why_no_postgres()
    if reason:
        raise RuntimeError(reason)
    bin_dir = postgres_bin()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="ronda-faults-pg-"))
    data = root / "data"
    account = pwd.getpwnam("postgres")
    os.chown(root, account.pw_uid, account.pw_gid)
    server = OwnPostgres(data, free_port(), bin_dir)
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
        server.start()
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class OwnRedis:
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/9"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_port(self.port, 10):
            self.stop()
            raise RuntimeError(f"redis-server did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server not installed")
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()

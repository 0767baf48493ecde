"""How collectors see the machine: commands and files, nothing else.

A collector never calls subprocess or open() itself. It asks a `CommandRunner` (runs a
command with a timeout; None when the tool is not installed) and a `FileReader` (None when a
file is missing or unreadable). The system implementations below touch the real machine; tests
replay recorded outputs of the real tools through the same two protocols.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_TIMEOUT = 30.0
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it ended. `exit_code` is -1 when it timed out."""

    stdout: str
    stderr: str = ""
    exit_code: int = 0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def output(self) -> str:
        """stdout and stderr together, for tools that print their answer on stderr (NSLog, ss)."""
        return self.stdout + ("\n" + self.stderr if self.stderr else "")


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        """Run argv; None when argv[0] is not installed."""
        ...


class FileReader(Protocol):
    def read_text(self, path: str) -> str | None:
        """A file's text; None when it is missing or unreadable."""
        ...

    def read_bytes(self, path: str) -> bytes | None: ...

    def list_dir(self, path: str) -> list[str] | None:
        """Entry names of a directory; None when it is missing or unreadable."""
        ...

    def mtime(self, path: str) -> float | None: ...


class SystemRunner:
    """Runs real commands with the C locale, so output is in the format parsers expect."""

    def __init__(self, extra_path: Sequence[str] = ("/usr/sbin", "/sbin", "/usr/local/sbin")) -> None:
        env = dict(os.environ)
        env.update({"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"})
        if os.name == "posix":
            parts = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            parts += [p for p in extra_path if p not in parts]
            env["PATH"] = os.pathsep.join(parts)
        self.env = env

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        executable = shutil.which(argv[0], path=self.env.get("PATH"))
        if executable is None:
            return None
        try:
            proc = subprocess.run(  # noqa: S603 - fixed argument lists, never a shell
                [executable, *argv[1:]],
                capture_output=True,
                timeout=timeout,
                env=self.env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return CommandResult(_decode(exc.stdout), _decode(exc.stderr), -1, timed_out=True)
        except OSError as exc:  # permission denied on the executable, exec format error
            return CommandResult("", str(exc), 126)
        return CommandResult(_decode(proc.stdout), _decode(proc.stderr), proc.returncode)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


class SystemFiles:
    """Reads the real file system; every failure is a None, never an exception."""

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as handle:
                chunks = []
                total = 0
                # Small reads: some procfs/sysfs files refuse one huge read (ENOMEM).
                while chunk := handle.read(65536):
                    chunks.append(chunk)
                    total += len(chunk)
                    if total >= MAX_FILE_BYTES:
                        break
                return b"".join(chunks)
        except OSError:
            return None

    def list_dir(self, path: str) -> list[str] | None:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return None

    def mtime(self, path: str) -> float | None:
        try:
            return os.stat(path).st_mtime
        except OSError:
            return None


@dataclass
class Host:
    """Everything a collector may know about the machine it runs on."""

    runner: CommandRunner
    files: FileReader
    hostname: str
    euid: int | None = None  # None on Windows
    machine: str = ""  # x86_64, arm64, AMD64
    environ: Mapping[str, str] = field(default_factory=dict)
    now: float = 0.0  # seconds since the epoch, for file ages

    @property
    def is_root(self) -> bool:
        return self.euid == 0


def system_host() -> Host:
    """The machine this process runs on."""
    import time

    euid: int | None = None
    with contextlib.suppress(AttributeError):
        euid = os.geteuid()
    return Host(
        runner=SystemRunner(),
        files=SystemFiles(),
        hostname=socket.gethostname(),
        euid=euid,
        machine=platform.machine(),
        environ=dict(os.environ),
        now=time.time(),
    )


def platform_name(os_type: str | None = None, machine: str | None = None) -> str:
    """linux-amd64, darwin-arm64, windows-amd64: the OS kernel family and the CPU architecture."""
    os_type = os_type or current_os()
    kernel = {"macos": "darwin"}.get(os_type, os_type)
    arch = (machine if machine is not None else platform.machine()).lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "x86": "386"}.get(arch, arch)
    return f"{kernel}-{arch}" if arch else kernel


def current_os() -> str:
    """linux, macos or windows (anything else is reported as its sys.platform)."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return sys.platform

"""Replays recorded outputs of real tools through the agent's CommandRunner and FileReader.

A command missing from the map is "not installed" (the runner answers None), exactly as on a
machine without that tool. Fixtures under fixtures/<os>/ are what the tools print, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ronda.agent.host import CommandResult, Host

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(os_name: str, name: str) -> str:
    """The file exactly as recorded (CRLF line ends and a BOM stay, as a pipe delivers them)."""
    with open(FIXTURES / os_name / name, encoding="utf-8", newline="") as handle:
        return handle.read()


def fixture_bytes(os_name: str, name: str) -> bytes:
    return (FIXTURES / os_name / name).read_bytes()


def out(os_name: str, name: str, code: int = 0) -> CommandResult:
    """A command that printed the fixture on stdout."""
    return CommandResult(fixture(os_name, name), "", code)


def err(os_name: str, name: str, code: int, stdout: str = "") -> CommandResult:
    """A command that printed the fixture on stderr."""
    return CommandResult(stdout, fixture(os_name, name), code)


Commands = dict[tuple[str, ...], CommandResult]


class ReplayRunner:
    def __init__(self, commands: Commands) -> None:
        self.commands = commands
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, timeout: float = 30.0) -> CommandResult | None:
        key = tuple(argv)
        self.calls.append(key)
        return self.commands.get(key)


@dataclass
class ReplayFiles:
    files: dict[str, str | bytes] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)
    mtimes: dict[str, float] = field(default_factory=dict)

    def read_text(self, path: str) -> str | None:
        value = self.files.get(path)
        if isinstance(value, bytes):
            return value.decode()
        return value

    def read_bytes(self, path: str) -> bytes | None:
        value = self.files.get(path)
        if isinstance(value, str):
            return value.encode()
        return value

    def list_dir(self, path: str) -> list[str] | None:
        return self.dirs.get(path)

    def mtime(self, path: str) -> float | None:
        return self.mtimes.get(path)


def replay_host(
    commands: Commands,
    files: ReplayFiles,
    *,
    hostname: str = "host",
    euid: int | None = 0,
    machine: str = "x86_64",
    now: float = 1_704_880_000.0,
) -> Host:
    return Host(ReplayRunner(commands), files, hostname, euid=euid, machine=machine, now=now)

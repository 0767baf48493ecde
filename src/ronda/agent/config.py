"""Where the agent keeps its configuration and credential: one directory, owner-only.

Default: /etc/ronda-agent when running as root, else ~/.config/ronda-agent (on Windows,
%ProgramData%\\Ronda Agent); --config-dir or RONDA_AGENT_DIR overrides. The directory is 0700,
config.json and credential are 0600, written atomically. A file found readable by others is
tightened back to 0600 with a warning before it is used.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("ronda.agent")

CONFIG_FILE = "config.json"
CREDENTIAL_FILE = "credential"
QUEUE_DIR = "queue"
DIR_MODE = 0o700
FILE_MODE = 0o600
DEFAULT_HEARTBEAT = 60
DEFAULT_REPORT = 900
DEFAULT_QUEUE_LIMIT = 100


class NotEnrolled(Exception):
    pass


class ConfigError(Exception):
    pass


@dataclass
class AgentConfig:
    server_url: str
    agent_id: str
    device_id: str | None = None
    tenant_id: str | None = None
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    report_interval: int = DEFAULT_REPORT
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    ca_file: str | None = None
    enrolled_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if not isinstance(values.get("server_url"), str) or not isinstance(values.get("agent_id"), str):
            raise ConfigError("config.json lacks server_url or agent_id")
        config = cls(**values)
        config.heartbeat_interval = _interval(config.heartbeat_interval, DEFAULT_HEARTBEAT, 5)
        config.report_interval = _interval(config.report_interval, DEFAULT_REPORT, 10)
        config.queue_limit = _interval(config.queue_limit, DEFAULT_QUEUE_LIMIT, 1)
        return config


def _interval(value: Any, default: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return max(minimum, int(value))


def default_dir(environ: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("RONDA_AGENT_DIR"):
        return Path(environ["RONDA_AGENT_DIR"]).expanduser()
    if os.name == "nt":
        return Path(environ.get("PROGRAMDATA", r"C:\ProgramData")) / "Ronda Agent"
    if euid is None:
        euid = os.geteuid()
    if euid == 0:
        return Path("/etc/ronda-agent")
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(base) / "ronda-agent"


class ConfigStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def config_path(self) -> Path:
        return self.directory / CONFIG_FILE

    @property
    def credential_path(self) -> Path:
        return self.directory / CREDENTIAL_FILE

    @property
    def queue_dir(self) -> Path:
        return self.directory / QUEUE_DIR

    def exists(self) -> bool:
        return self.config_path.exists() or self.credential_path.exists()

    def ensure_dir(self, path: Path | None = None) -> Path:
        path = path or self.directory
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if os.name == "posix":
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode != DIR_MODE:
                if mode & 0o077:
                    log.warning("tightening %s from %o to %o", path, mode, DIR_MODE)
                os.chmod(path, DIR_MODE)
        return path

    def save(self, config: AgentConfig, credential: str | None = None) -> None:
        self.ensure_dir()
        write_private(self.config_path, (json.dumps(asdict(config), indent=2) + "\n").encode())
        if credential is not None:
            write_private(self.credential_path, credential.encode() + b"\n")

    def load(self) -> tuple[AgentConfig, str]:
        if not self.config_path.exists() or not self.credential_path.exists():
            raise NotEnrolled(f"not enrolled: no configuration in {self.directory} (run `ronda agent enroll` first)")
        self.ensure_dir()
        for path in (self.config_path, self.credential_path):
            _tighten(path)
        try:
            data = json.loads(self.config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.config_path} is unreadable: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.config_path} is not a JSON object")
        credential = self.credential_path.read_text().strip()
        if not credential:
            raise ConfigError(f"{self.credential_path} is empty")
        return AgentConfig.from_json(data), credential


def _tighten(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); tightening to %o", path, mode, FILE_MODE)
        os.chmod(path, FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Write data to path atomically, readable by the owner only from the first byte."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temporary, flags, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if os.name == "posix":
            os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

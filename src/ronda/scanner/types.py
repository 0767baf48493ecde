"""Plain data types of the scanner library (shared by the engine, the API and the CLI)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


def _plain(obj: Any, skip: str = "") -> dict[str, Any]:
    """A dataclass's fields as a dict; lists and dicts copied. Not dataclasses.asdict: that one
    deep-copies every value recursively, which costs seconds on a /16's results."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name == skip:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, dict | list):
            value = copy.deepcopy(value) if value else type(value)()
        out[f.name] = value
    return out


class ScanInputError(ValueError):
    """Bad scan input; ``str(exc)`` is a user-facing message and ``field`` names the culprit."""

    def __init__(self, message: str, field: str = "target") -> None:
        super().__init__(message)
        self.field = field


@dataclass(slots=True)
class PortResult:
    port: int
    protocol: str = "tcp"
    state: str = "open"  # open | closed | filtered
    service: str | None = None  # IANA name when nothing answers
    product: str | None = None
    version: str | None = None
    banner: str | None = None  # first line(s) the service said, <= 512 chars
    cpe: list[str] = field(default_factory=list)  # CPE 2.3 names
    extra: dict[str, Any] = field(default_factory=dict)  # tls: {...}; http: {status, server, title}

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PortResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class HostResult:
    ip: str
    hostname: str | None = None
    mac: str | None = None
    vendor: str | None = None
    os_guess: str | None = None
    os_confidence: int = 0  # 0-100
    device_type: str | None = None  # server | workstation | router | printer | iot | ...
    device_type_confidence: int = 0
    ttl: int | None = None
    rtt_ms: float | None = None
    ports: list[PortResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = self.summary()
        data["ports"] = [p.to_dict() for p in self.ports]
        return data

    def summary(self) -> dict[str, Any]:
        """The host's fields without its ports (the ``host_found`` event payload)."""
        return _plain(self, skip="ports")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostResult:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names and k != "ports"}
        return cls(**values, ports=[PortResult.from_dict(p) for p in data.get("ports") or []])


@dataclass(slots=True)
class ScanResult:
    hosts: list[HostResult]
    started_at: datetime
    finished_at: datetime
    hosts_total: int  # addresses in the target set
    ports_per_host: int
    probes_sent: int
    engine: str = "builtin"

    def to_dict(self) -> dict[str, Any]:
        return {
            "hosts": [h.to_dict() for h in self.hosts],
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "hosts_total": self.hosts_total,
            "ports_per_host": self.ports_per_host,
            "probes_sent": self.probes_sent,
            "engine": self.engine,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanResult:
        return cls(
            hosts=[HostResult.from_dict(h) for h in data.get("hosts") or []],
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            hosts_total=int(data.get("hosts_total", 0)),
            ports_per_host=int(data.get("ports_per_host", 0)),
            probes_sent=int(data.get("probes_sent", 0)),
            engine=str(data.get("engine", "builtin")),
        )


@dataclass(slots=True)
class ScanEvent:
    kind: str  # "host_found" | "port_found" | "progress"
    # host_found: HostResult fields (no ports); port_found: {ip, port, protocol, service, product, version};
    # progress: {progress_percent, hosts_done, hosts_total, probes_sent, hosts_found, ports_found, eta_seconds}
    data: dict[str, Any]


@dataclass(slots=True)
class ScanOptions:
    targets: list[str]
    exclude: list[str] = field(default_factory=list)
    ports: str | None = None  # None: the profile's ports
    profile: str = "normal"  # quick | normal | deep | stealth | custom
    timeout_ms: int | None = None  # connect timeout ceiling; None: profile default (adaptive below it)
    max_concurrent: int | None = None
    max_rate: float | None = None  # probes per second cap (stealth sets one)
    retries: int | None = None
    enable_profiling: bool | None = None
    enable_service_detection: bool | None = None
    engine: str = "builtin"  # builtin | nmap
    max_hosts: int = 65536  # a /16
    processes: int | None = None  # scanning processes; None: one per core
    discovery: bool = True  # host discovery before the port sweep (False: treat every address as up, like -Pn)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    ports: str
    timeout_ms: int
    max_concurrent: int
    max_rate: float | None
    retries: int
    profiling: bool
    detection: bool
    cve_match: bool

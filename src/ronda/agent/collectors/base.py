"""The one interface every OS collector implements, and the report it produces.

A collector answers each question from what a tool printed; when no tool answers, the check is
`unknown` with the reason, never a guess. One collector instance is one collection: command
results are memoised so a tool consulted by two checks runs once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from ronda.agent import AGENT_VERSION
from ronda.agent.host import DEFAULT_TIMEOUT, CommandResult, Host

log = logging.getLogger("ronda.agent")

CheckResult = Literal["pass", "fail", "unknown"]
CHECKS: tuple[str, ...] = (
    "disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled",
)
T = TypeVar("T")


@dataclass
class Check:
    """One posture check's answer, which tool gave it, and why."""

    result: CheckResult
    reason: str
    source: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, reason: str, source: str, **details: Any) -> Check:
        return cls("pass", reason, source, details)

    @classmethod
    def failed(cls, reason: str, source: str, **details: Any) -> Check:
        return cls("fail", reason, source, details)

    @classmethod
    def unknown(cls, reason: str, source: str | None = None, **details: Any) -> Check:
        return cls("unknown", reason, source, details)

    def as_details(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, **self.details}


@dataclass
class OsInfo:
    name: str | None = None  # "Debian GNU/Linux 12 (bookworm)", "macOS", "Microsoft Windows 11 Pro"
    version: str | None = None  # "12", "14.2.1", "10.0.22631"
    build: str | None = None
    kernel: str | None = None


@dataclass
class Hardware:
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_threads: int | None = None
    memory_bytes: int | None = None
    disks: list[dict[str, Any]] = field(default_factory=list)
    device_type: str = "unknown"
    device_type_source: str | None = None
    virtualization: str | None = None


class Collector(ABC):
    """Collects one report. Subclasses implement the sections for their OS."""

    os_type: ClassVar[str]

    def __init__(self, host: Host) -> None:
        self.host = host
        self._memo: dict[tuple[str, ...], CommandResult | None] = {}

    # --- what each OS implements -----------------------------------------------------------

    @abstractmethod
    def os_info(self) -> OsInfo: ...

    @abstractmethod
    def hardware(self) -> Hardware: ...

    @abstractmethod
    def device_name(self) -> str: ...

    @abstractmethod
    def packages(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def interfaces(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def primary_interface(self) -> str | None: ...

    @abstractmethod
    def listening_ports(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def check_disk_encryption(self) -> Check: ...

    @abstractmethod
    def check_firewall_enabled(self) -> Check: ...

    @abstractmethod
    def check_screen_lock_enabled(self) -> Check: ...

    @abstractmethod
    def check_os_up_to_date(self) -> Check: ...

    @abstractmethod
    def check_antivirus_enabled(self) -> Check: ...

    # --- shared machinery --------------------------------------------------------------------

    def run(self, *argv: str, timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        key = tuple(argv)
        if key not in self._memo:
            self._memo[key] = self.host.runner.run(argv, timeout=timeout)
        return self._memo[key]

    def read(self, path: str) -> str | None:
        return self.host.files.read_text(path)

    def checks(self) -> dict[str, Check]:
        results: dict[str, Check] = {}
        for name in CHECKS:
            method: Callable[[], Check] = getattr(self, f"check_{name}")
            try:
                results[name] = method()
            except Exception as exc:  # a parser bug must cost one check, not the report
                log.warning("check %s failed: %s", name, exc, exc_info=True)
                results[name] = Check.unknown(f"the collector failed: {type(exc).__name__}: {exc}")
        return results

    def _safely(self, what: str, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except Exception as exc:
            log.warning("collecting %s failed: %s", what, exc, exc_info=True)
            return default

    def identity(self) -> dict[str, Any]:
        """The host facts sent at enrolment (cheap: no software, no checks)."""
        os_info = self._safely("os", self.os_info, OsInfo())
        hardware = self._safely("hardware", self.hardware, Hardware())
        interfaces: list[dict[str, Any]] = self._safely("interfaces", self.interfaces, [])
        primary = _primary(interfaces, self._safely("default route", self.primary_interface, None))
        return {
            "hostname": self.host.hostname,
            "serial_number": hardware.serial_number,
            "os_type": self.os_type,
            "os_version": os_info.version,
            "mac": primary.get("mac"),
        }

    def collect(self) -> dict[str, Any]:
        """The report body POST /devices/report accepts."""
        os_info = self._safely("os", self.os_info, OsInfo())
        hardware = self._safely("hardware", self.hardware, Hardware())
        packages: list[dict[str, Any]] = self._safely("software", self.packages, [])
        interfaces: list[dict[str, Any]] = self._safely("interfaces", self.interfaces, [])
        ports: list[dict[str, Any]] = self._safely("listening ports", self.listening_ports, [])
        primary = _primary(interfaces, self._safely("default route", self.primary_interface, None))
        checks = self.checks()
        security: dict[str, Any] = {name: check.result for name, check in checks.items()}
        security["details"] = {name: check.as_details() for name, check in checks.items()}
        sources: dict[str, int] = {}
        for package in packages:
            sources[package["source"]] = sources.get(package["source"], 0) + 1
        return {
            "device_name": self._safely("device name", self.device_name, self.host.hostname),
            "hostname": self.host.hostname,
            "serial_number": hardware.serial_number,
            "device_type": hardware.device_type,
            "os_type": self.os_type,
            "os_version": os_info.version,
            "agent_version": AGENT_VERSION,
            "security": security,
            "hardware": {
                "manufacturer": hardware.manufacturer,
                "model": hardware.model,
                "serial_number": hardware.serial_number,
                "cpu_model": hardware.cpu_model,
                "cpu_cores": hardware.cpu_cores,
                "cpu_threads": hardware.cpu_threads,
                "memory_bytes": hardware.memory_bytes,
                "disks": hardware.disks,
                "architecture": self.host.machine or None,
                "virtualization": hardware.virtualization,
                "device_type_source": hardware.device_type_source,
                "os": {
                    "name": os_info.name,
                    "version": os_info.version,
                    "build": os_info.build,
                    "kernel": os_info.kernel,
                },
            },
            "software": {"packages": packages, "count": len(packages), "sources": sources},
            "network": {
                "interfaces": interfaces,
                "listening_ports": ports,
                "primary_interface": primary.get("name"),
                "primary_ip": primary.get("ip"),
                "primary_mac": primary.get("mac"),
            },
        }


def _primary(interfaces: Sequence[dict[str, Any]], name: str | None) -> dict[str, Any]:
    """The interface holding the default route; else the first non-loopback one with an address."""
    chosen: dict[str, Any] | None = None
    if name:
        chosen = next((i for i in interfaces if i.get("name") == name), None)
    if chosen is None:
        chosen = next(
            (i for i in interfaces if i.get("mac") and i.get("ips") and not _is_loopback(i)), None
        )
    if chosen is None:
        return {}
    ips: list[str] = chosen.get("ips") or []
    ipv4 = [ip for ip in ips if "." in ip]
    return {"name": chosen.get("name"), "mac": chosen.get("mac"), "ip": next(iter(ipv4 or ips), None)}


def _is_loopback(interface: dict[str, Any]) -> bool:
    ips = interface.get("ips") or []
    return bool(ips) and all(ip.startswith("127.") or ip == "::1" for ip in ips)

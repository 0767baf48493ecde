"""One collector per operating system, all behind `Collector` (see base.py)."""

from __future__ import annotations

from typing import Any

from ronda.agent.collectors.base import CHECKS, Check, Collector, Hardware, OsInfo
from ronda.agent.collectors.linux import LinuxCollector
from ronda.agent.collectors.macos import MacCollector
from ronda.agent.collectors.windows import WindowsCollector
from ronda.agent.host import Host, current_os, system_host

COLLECTORS: dict[str, type[Collector]] = {
    "linux": LinuxCollector,
    "macos": MacCollector,
    "windows": WindowsCollector,
}


class UnsupportedPlatform(Exception):
    pass


def collector_for(host: Host | None = None, os_type: str | None = None) -> Collector:
    """The collector for this machine (or for `os_type` on a given host, as tests do)."""
    os_type = os_type or current_os()
    cls = COLLECTORS.get(os_type)
    if cls is None:
        raise UnsupportedPlatform(f"no collector for {os_type}; supported: {', '.join(COLLECTORS)}")
    return cls(host or system_host())


def collect(host: Host | None = None, os_type: str | None = None) -> dict[str, Any]:
    return collector_for(host, os_type).collect()


__all__ = [
    "CHECKS",
    "COLLECTORS",
    "Check",
    "Collector",
    "Hardware",
    "OsInfo",
    "UnsupportedPlatform",
    "collect",
    "collector_for",
]

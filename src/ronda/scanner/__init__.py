"""Ronda's network scanner: a plain asyncio library (no web framework, no database).

Usable from the CLI (``ronda scan``), the server's scan jobs and workers::

    result = await run_scan(ScanOptions(targets=["10.0.0.0/24"], profile="quick"), on_event=print)
"""

from ronda.scanner.engine import run_scan
from ronda.scanner.ports import parse_ports, top_ports
from ronda.scanner.profiles import PROFILES
from ronda.scanner.targets import Targets, parse_targets
from ronda.scanner.types import (
    HostResult,
    PortResult,
    Profile,
    ScanEvent,
    ScanInputError,
    ScanOptions,
    ScanResult,
)

__all__ = [
    "PROFILES",
    "HostResult",
    "PortResult",
    "Profile",
    "ScanEvent",
    "ScanInputError",
    "ScanOptions",
    "ScanResult",
    "Targets",
    "parse_ports",
    "parse_targets",
    "run_scan",
    "top_ports",
]

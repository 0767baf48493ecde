"""One scan in its own process: `python -m ronda.scans.worker_process`.

Reads the ScanOptions as one JSON line on stdin and writes JSON lines on stdout:
{"type": "progress" | "host_found" | "port_found", "data": {...}} while it runs, then
{"type": "result", "data": ScanResult.to_dict()} or {"type": "error", "data": {"message", "field"}}.
The server runs scans here so a scan never competes with the API's event loop, and so stopping
a scan is killing a process group (every socket it had closes with it).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import signal
import sys
from typing import Any

from ronda.scanner import ScanEvent, ScanInputError, ScanOptions, run_scan

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: if the server dies, so does its scan (no orphaned scanners)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _emit(kind: str, data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"type": kind, "data": data}, default=str) + "\n")
    sys.stdout.flush()


def _on_event(event: ScanEvent) -> None:
    _emit(event.kind, event.data)


def main() -> int:
    _die_with_parent()
    line = sys.stdin.readline()
    try:
        options = ScanOptions(**json.loads(line))
    except (ValueError, TypeError) as exc:
        _emit("error", {"message": f"bad scan options: {exc}", "field": "options"})
        return 2
    try:
        result = asyncio.run(run_scan(options, _on_event))
    except ScanInputError as exc:
        _emit("error", {"message": str(exc), "field": exc.field})
        return 2
    _emit("result", result.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())

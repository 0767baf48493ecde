"""Scan profiles: what each named profile scans and how hard it pushes."""

from __future__ import annotations

from ronda.scanner.types import Profile

PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", ports="top 100", timeout_ms=1000, max_concurrent=1024, max_rate=None, retries=1,
        profiling=False, detection=True, cve_match=False,
    ),
    "normal": Profile(
        name="normal", ports="top 1000", timeout_ms=1250, max_concurrent=1024, max_rate=None, retries=2,
        profiling=True, detection=True, cve_match=False,
    ),
    "deep": Profile(
        name="deep", ports="1-65535", timeout_ms=1500, max_concurrent=2048, max_rate=None, retries=3,
        profiling=True, detection=True, cve_match=True,
    ),
    # low and slow: few probes in flight, a hard probes-per-second cap
    "stealth": Profile(
        name="stealth", ports="top 1000", timeout_ms=2000, max_concurrent=16, max_rate=50.0, retries=1,
        profiling=False, detection=False, cve_match=False,
    ),
    # the caller's knobs over normal's defaults
    "custom": Profile(
        name="custom", ports="top 1000", timeout_ms=1250, max_concurrent=1024, max_rate=None, retries=2,
        profiling=True, detection=True, cve_match=False,
    ),
}

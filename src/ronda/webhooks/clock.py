"""The dispatcher's idea of now: the system clock, or one the tests move by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from ronda.core.timeutil import utcnow

STATE_KEY = "webhook_clock"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


class SkewedClock:
    """The system clock plus a fixed offset (RONDA_WEBHOOK_CLOCK_SKEW): lets a test put a separate
    server process at a chosen point of a retry schedule."""

    def __init__(self, skew_seconds: float) -> None:
        self.skew = timedelta(seconds=skew_seconds)

    def now(self) -> datetime:
        return utcnow() + self.skew


class ManualClock:
    """Stands still until advanced: retry schedules of minutes and hours, tested in milliseconds."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or utcnow()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


def clock_of(state: Any) -> Clock:
    """The app's clock (app.state.webhook_clock), read at each use so a test can swap it."""
    clock: Clock | None = getattr(state, STATE_KEY, None)
    return clock if clock is not None else SystemClock()

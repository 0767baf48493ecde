"""What every evidence query gets: the session, the tenant, the period and a cache of shared datasets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.compliance.sqlfuncs import Dialect
from ronda.devices.posture import Policy


@dataclass
class EvidenceContext:
    session: AsyncSession
    tenant_id: str
    start_day: date
    end_day: date  # inclusive: the period runs to the end of this day (or to now, if sooner)
    now: datetime
    policy: Policy
    max_exceptions: int
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.start_day, time(), UTC)

    @property
    def end(self) -> datetime:
        """The exclusive end: midnight after end_day, but never later than now (the future has no evidence)."""
        return min(datetime.combine(self.end_day + timedelta(days=1), time(), UTC), self.now)

    @property
    def dialect(self) -> Dialect:
        return Dialect(self.session.get_bind().dialect.name)

    async def shared(self, name: str, build: Callable[[], Awaitable[Any]]) -> Any:
        """A dataset several evidence queries read (device posture per device), computed once."""
        if name not in self.cache:
            self.cache[name] = await build()
        return self.cache[name]

"""The services' clock: `app.state.clock` (a callable returning an aware datetime) when set, else UTC now.

Status, scheduling and the overdue sweep all read the date through here, so a test can pin it on a
server it started (`server.app.state.clock = lambda: datetime(2026, 5, 1, tzinfo=UTC)`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from ronda.core.timeutil import utcnow


def now_of(app: Any) -> datetime:
    clock: Callable[[], datetime] | None = getattr(app.state, "clock", None)
    return clock() if clock is not None else utcnow()


async def request_today(request: Request) -> date:
    return now_of(request.app).date()


TodayDep = Annotated[date, Depends(request_today)]

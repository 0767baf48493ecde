"""Verified callers, remembered while the auth epoch stands still.

Reading a caller's session, user and tenant is most of what an authenticated request costs. What the
read decides changes only when those rows change, and every such change moves the auth epoch
(auth/epoch.py) before its response leaves; so a caller verified at epoch N is still valid while the
epoch reads N. A logout, a revoked key, a role change or a deactivated user therefore takes effect on
the very next request, in every process. Token and key expiry are checked on every request all the
same, and an entry is read again after MAX_AGE seconds whatever the epoch says (a backstop for an
epoch that could not be moved).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, make_transient_to_detached
from starlette.requests import Request

from ronda.auth.epoch import Epoch
from ronda.core.principal import Principal

MAX_AGE = 60.0  # seconds
CAPACITY = 4096  # callers remembered per process; the oldest is forgotten first


@dataclass(slots=True)
class Caller:
    epoch: int
    principal: Principal
    cached_at: float
    key_expires_at: datetime | None = None  # an API key's expiry
    key_last_used_at: datetime | None = None  # when this process last saw it recorded
    profile: bytes | None = None  # the GET /users/me body, built on first ask
    tenant: RowSnapshot | None = None  # the caller's tenant row as verified

    def preload(self, session: Session) -> None:
        """Put the tenant row in a new request session as authentication would have read it, so a
        route's session.get(Tenant, ...) costs no query (the epoch vouches that it is current)."""
        if self.tenant is not None:
            self.tenant.attach(session)


class RowSnapshot:
    """A loaded row's column values, to give each request its own copy of it (a shared ORM object
    would be expired by one request's rollback, or changed in place by another's route)."""

    def __init__(self, row: Any) -> None:
        self.entity = type(row)
        self.values = {attr.key: getattr(row, attr.key) for attr in inspect(self.entity).column_attrs}

    def attach(self, session: Session) -> None:
        row = self.entity(**{key: copy.deepcopy(value) if isinstance(value, dict | list) else value
                             for key, value in self.values.items()})
        make_transient_to_detached(row)
        session.add(row)
        session.info["preloaded"] = row  # the identity map is weak: hold it for the request


class CallerCache:
    def __init__(self, epoch: Epoch | None) -> None:
        self.epoch = epoch
        self._entries: dict[str, Caller] = {}

    async def now(self) -> int | None:
        """The epoch to check entries against and to stamp new ones with; None: remember nothing."""
        return None if self.epoch is None else await self.epoch.current()

    def get(self, key: str, epoch: int | None) -> Caller | None:
        if epoch is None:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.epoch != epoch or time.monotonic() - entry.cached_at > MAX_AGE:
            del self._entries[key]
            return None
        return entry

    def put(self, key: str, epoch: int | None, principal: Principal, **extra: Any) -> Caller | None:
        if epoch is None:
            return None
        if key not in self._entries and len(self._entries) >= CAPACITY:
            del self._entries[next(iter(self._entries))]
        entry = self._entries[key] = Caller(epoch, principal, time.monotonic(), **extra)
        return entry


def remember_caller(request: Request, caller: Caller | None, *, hit: bool = False) -> None:
    state = request.scope.setdefault("state", {})
    state["caller"] = caller
    if hit and caller is not None and caller.tenant is not None:
        state["preload"] = caller.preload  # core.uow.request_session calls it on the new session


def current_caller(request: Request) -> Caller | None:
    """The cache entry behind this request's principal, if it has one (for per-caller memos)."""
    state: dict[str, Any] = request.scope.get("state", {})
    return state.get("caller")

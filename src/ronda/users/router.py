from __future__ import annotations

from ronda.core.uow import domain_router

router = domain_router(prefix="/users", tags=["users"])

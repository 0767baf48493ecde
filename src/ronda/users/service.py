"""User rules: profiles, administration, unlocks. Flushes, never commits; audits every change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.errors import AppError
from ronda.core.principal import Principal
from ronda.tenants.models import Tenant
from ronda.users.models import User
from ronda.users.schemas import MeRead, UserRead


async def me_view(session: AsyncSession, principal: Principal) -> MeRead:
    user = await session.get(User, principal.user_id)
    tenant = await session.get(Tenant, principal.tenant_id)
    if user is None or tenant is None:
        raise AppError(401, "Invalid or expired credentials")
    base = UserRead.model_validate(user).model_dump()
    return MeRead(**base, permissions=sorted(principal.permissions), auth_type=principal.kind,
                  mfa_required=tenant.mfa_required)

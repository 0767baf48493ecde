"""Bootstrap operations for the CLI: the first admin, counting users."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select

from ronda.app import build_runtime
from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.config import Settings
from ronda.core.authz import HUMAN_ROLES
from ronda.core.db import create_engine, create_session_factory, transaction
from ronda.core.security import password_problem
from ronda.tenants.models import Tenant
from ronda.users.models import User


class AdminError(Exception):
    pass


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "tenant"


async def count_users(settings: Settings) -> int:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(create_session_factory(engine), write=False) as session:
            return int(await session.scalar(select(func.count()).select_from(User)) or 0)
    finally:
        await engine.dispose()


async def create_admin(
    settings: Settings, *, username: str, email: str, password: str, tenant: str, role: str, full_name: str = ""
) -> tuple[str, str, bool]:
    if role not in HUMAN_ROLES:
        raise AdminError(f"unknown role {role!r}; choose one of {', '.join(HUMAN_ROLES)}")
    problem = password_problem(password)
    if problem:
        raise AdminError(problem)
    if "@" not in email:
        raise AdminError("email must be an email address")
    runtime = build_runtime(settings)
    try:
        password_hash = await runtime.passwords.hash(password)
        async with transaction(runtime.sessions) as session:
            clash = await session.scalar(
                select(User.id).where(or_(User.username == username, User.email == email.lower()))
            )
            if clash:
                raise AdminError("a user with that username or email already exists")
            row = await session.scalar(select(Tenant).where(Tenant.name == tenant))
            created = row is None
            if row is None:
                row = Tenant(name=tenant, slug=slugify(tenant), plan="enterprise")
                session.add(row)
                await session.flush()
            user = User(tenant_id=row.id, username=username, email=email.lower(), full_name=full_name,
                        password_hash=password_hash, role=role)
            session.add(user)
            await session.flush()
            actor = Actor(actor_type="system", tenant_id=row.id)
            if created:
                await audit.record(session, actor, "tenant.created", resource_type="tenant", resource_id=row.id,
                                   metadata={"name": tenant, "via": "cli"})
            await audit.record(session, actor, "user.created", resource_type="user", resource_id=user.id,
                               metadata={"username": username, "role": role, "via": "cli"})
            return user.id, row.id, created
    finally:
        await runtime.limiter.close()
        await runtime.engine.dispose()

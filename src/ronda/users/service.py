"""User rules: profiles, administration, unlocks. Flushes, never commits; audits every change."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.auth.callers import current_caller
from ronda.auth.service import set_password
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, csv_response, fetch_page
from ronda.core.principal import Principal
from ronda.core.runtime import Runtime
from ronda.core.security import password_problem
from ronda.core.uow import request_session
from ronda.tenants.models import Tenant
from ronda.users import repository
from ronda.users.models import User
from ronda.users.schemas import MeRead, MeUpdate, UserCreate, UserRead, UserUpdate

CSV_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    (name, attrgetter(name))
    for name in ("id", "username", "email", "full_name", "role", "tenant_id", "is_active", "mfa_enabled",
                 "locked_until", "last_login_at", "created_at")
]


async def me_response(request: Request, principal: Principal) -> Response:
    """GET /users/me. The body is remembered with the verified caller: it changes only with the user or
    tenant rows, and any change to those makes the caller be verified (and this built) again."""
    caller = current_caller(request)
    if caller is not None and caller.profile is not None:
        return Response(caller.profile, media_type="application/json")
    view = await me_view(request_session(request), principal)
    body = view.__pydantic_serializer__.to_json(view)
    if caller is not None:
        caller.profile = body
    return Response(body, media_type="application/json")


async def me_view(session: AsyncSession, principal: Principal) -> MeRead:
    user = await session.get(User, principal.user_id)
    tenant = await session.get(Tenant, principal.tenant_id)
    if user is None or tenant is None:
        raise AppError(401, "Invalid or expired credentials")
    base = UserRead.model_validate(user).model_dump()
    return MeRead(**base, permissions=sorted(principal.permissions), auth_type=principal.kind,
                  mfa_required=tenant.mfa_required)


# --- helpers ---------------------------------------------------------------------------------


def _problem(field: str, reason: str) -> list[dict[str, str]]:
    return [{"field": field, "location": "body", "reason": reason}]


def _check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise AppError(400, problem, details=_problem("password", problem))


async def _ensure_free(
    session: AsyncSession, *, username: str | None = None, email: str | None = None, exclude_id: str | None = None
) -> None:
    taken = await repository.identity_taken(session, username=username, email=email, exclude_id=exclude_id)
    if taken:
        raise AppError(409, f"A user with that {taken} already exists",
                       details=_problem(taken, "already in use"))


async def _target(session: AsyncSession, principal: Principal, user_id: str) -> User:
    """A user of the caller's tenant, locked for the change; another tenant's id is a 404."""
    user = await repository.get(session, principal, user_id, for_update=True)
    if user is None:
        raise not_found("User")
    return user


def _guard_super_admin(principal: Principal, user: User) -> None:
    if user.role == "super_admin" and principal.role != "super_admin":
        raise AppError(403, "Only a super admin may change a super admin's account")


def _change(changes: dict[str, dict[str, Any]], user: User, field: str, new: Any) -> None:
    old = getattr(user, field)
    if new != old:
        changes[field] = {"old": old, "new": new}
        setattr(user, field, new)


async def _deactivate(session: AsyncSession, principal: Principal, user: User, actor: Actor, via: str) -> None:
    user.is_active = False
    ended = await repository.revoke_sessions(session, principal, user.id, "user_deactivated")
    await audit.record(session, actor, "user.deactivated", resource_type="user", resource_id=user.id,
                       metadata={"username": user.username, "sessions_revoked": ended, "via": via})


# --- own profile -----------------------------------------------------------------------------


async def update_me(session: AsyncSession, rt: Runtime, principal: Principal, body: MeUpdate, actor: Actor) -> MeRead:
    """Own name, email and password; email and password need the current password."""
    if principal.kind != "user":
        raise AppError(403, "Only a signed-in user can change their profile, not an API key")
    user = await repository.get(session, principal, principal.user_id, for_update=True)
    if user is None:
        raise AppError(401, "Invalid or expired credentials")
    new_email = str(body.email).lower() if body.email is not None else None
    email_changes = new_email is not None and new_email != user.email
    if (email_changes or body.password is not None) and not body.current_password:
        raise AppError(400, "current_password is required to change your email or password",
                       details=_problem("current_password", "required to change email or password"))
    if body.password is not None:
        _check_password(body.password)
        # Verifies the current password, ends the user's other logins and audits the change.
        await set_password(session, rt, user, body.current_password, body.password, actor,
                           keep_session=principal.session_id)
    elif email_changes and not await rt.passwords.verify(user.password_hash, body.current_password or ""):
        await audit.record(session, actor, "auth.login.failed", resource_type="user", resource_id=user.id,
                           metadata={"reason": "bad_current_password"})
        raise AppError(400, "Current password is incorrect", persist=True,
                       details=_problem("current_password", "incorrect"))
    if email_changes:
        await _ensure_free(session, email=new_email, exclude_id=user.id)
    changes: dict[str, dict[str, Any]] = {}
    if body.full_name is not None:
        _change(changes, user, "full_name", body.full_name)
    if new_email is not None:
        _change(changes, user, "email", new_email)
    if changes:
        await audit.record(session, actor, "user.profile_updated", resource_type="user", resource_id=user.id,
                           metadata={"changes": changes})
    await session.flush()
    return await me_view(session, principal)


# --- administration --------------------------------------------------------------------------


async def list_users(
    session: AsyncSession, principal: Principal, params: ListParams, *, role: str | None, is_active: bool | None
) -> Page[UserRead]:
    statement = repository.list_statement(principal, params, role=role, is_active=is_active)
    rows, total = await fetch_page(session, statement, params)
    return Page[UserRead](data=[UserRead.model_validate(row) for row in rows], meta=params.meta(total))


def export_users(
    rt: Runtime, principal: Principal, params: ListParams, *, role: str | None, is_active: bool | None
) -> StreamingResponse:
    """Every user matching the same filters, search and sort, streamed as CSV."""
    statement = repository.list_statement(principal, params, role=role, is_active=is_active)
    return csv_response(rt.sessions, statement, CSV_COLUMNS, "users.csv")


async def get_user(session: AsyncSession, principal: Principal, user_id: str) -> UserRead:
    user = await repository.get(session, principal, user_id)
    if user is None:
        raise not_found("User")
    return UserRead.model_validate(user)


async def create_user(
    session: AsyncSession, rt: Runtime, principal: Principal, body: UserCreate, actor: Actor
) -> UserRead:
    if body.role == "super_admin" and principal.role != "super_admin":
        raise AppError(403, "Only a super admin may create a super admin")
    _check_password(body.password)
    email = str(body.email).lower()
    password_hash = await rt.passwords.hash(body.password)
    await _ensure_free(session, username=body.username, email=email)
    user = User(tenant_id=principal.tenant_id, username=body.username, email=email, full_name=body.full_name,
                password_hash=password_hash, role=body.role)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the name between check and insert
        raise AppError(409, "A user with that username or email already exists") from exc
    await audit.record(session, actor, "user.created", resource_type="user", resource_id=user.id,
                       metadata={"username": user.username, "email": user.email, "role": user.role})
    return UserRead.model_validate(user)


async def update_user(
    session: AsyncSession, rt: Runtime, principal: Principal, user_id: str, body: UserUpdate, actor: Actor
) -> UserRead:
    user = await _target(session, principal, user_id)
    _guard_super_admin(principal, user)
    is_self = user.id == principal.user_id
    role_changes = body.role is not None and body.role != user.role
    if role_changes:
        if is_self:
            raise AppError(409, "You cannot change your own role")
        if body.role == "super_admin" and principal.role != "super_admin":
            raise AppError(403, "Only a super admin may grant the super_admin role")
    if body.is_active is False and user.is_active and is_self:
        raise AppError(409, "You cannot deactivate your own account")
    if body.password is not None:
        if is_self:
            raise AppError(409, "Change your own password with PATCH /users/me or /auth/change-password, "
                                "which need your current password")
        _check_password(body.password)
    new_email = str(body.email).lower() if body.email is not None else None
    if new_email is not None and new_email != user.email:
        await _ensure_free(session, email=new_email, exclude_id=user.id)

    changes: dict[str, dict[str, Any]] = {}
    if body.full_name is not None:
        _change(changes, user, "full_name", body.full_name)
    if new_email is not None:
        _change(changes, user, "email", new_email)
    if changes:
        await audit.record(session, actor, "user.updated", resource_type="user", resource_id=user.id,
                           metadata={"username": user.username, "changes": changes})
    if role_changes:
        old_role, user.role = user.role, str(body.role)
        await audit.record(session, actor, "user.role_changed", resource_type="user", resource_id=user.id,
                           metadata={"username": user.username, "old": old_role, "new": user.role})
    if body.is_active is False and user.is_active:
        await _deactivate(session, principal, user, actor, via="update")
    elif body.is_active is True and not user.is_active:
        user.is_active = True
        await audit.record(session, actor, "user.reactivated", resource_type="user", resource_id=user.id,
                           metadata={"username": user.username})
    if body.password is not None:
        # An admin reset: no current password, and every login of that user ends.
        await set_password(session, rt, user, None, body.password, actor, keep_session=None)
    await session.flush()
    return UserRead.model_validate(user)


async def delete_user(session: AsyncSession, principal: Principal, user_id: str, actor: Actor) -> UserRead:
    """Deactivate: the account can no longer log in, its sessions end, its history stays."""
    user = await _target(session, principal, user_id)
    if user.id == principal.user_id:
        raise AppError(409, "You cannot delete your own account")
    _guard_super_admin(principal, user)
    if user.is_active:
        await _deactivate(session, principal, user, actor, via="delete")
        await session.flush()
    return UserRead.model_validate(user)


async def unlock_user(session: AsyncSession, principal: Principal, user_id: str, actor: Actor) -> UserRead:
    """Clear a lockout and the failure count so the user can log in again at once."""
    user = await _target(session, principal, user_id)
    previous = {"locked_until": user.locked_until, "failed_attempts": user.failed_login_count}
    user.locked_until = None
    user.failed_login_count = 0
    user.failed_window_start = None
    await audit.record(session, actor, "auth.account.unlocked", resource_type="user", resource_id=user.id,
                       metadata={"username": user.username, **previous})
    await session.flush()
    return UserRead.model_validate(user)

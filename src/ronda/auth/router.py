from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Request
from starlette.responses import Response

from ronda.audit.deps import ActorDep, AnonymousActorDep, principal_actor
from ronda.auth import service
from ronda.auth.schemas import (
    ChangePassword,
    LoginRequest,
    LogoutResponse,
    RefreshRequest,
    TokenResponse,
    TotpCode,
    TwoFactorEnabled,
    TwoFactorSetup,
)
from ronda.core.authz import AuthenticatedDep
from ronda.core.context import request_ip
from ronda.core.errors import AppError
from ronda.core.principal import get_principal
from ronda.core.responses import json_response
from ronda.core.runtime import RuntimeDep
from ronda.core.schemas import Message
from ronda.core.uow import SessionDep, domain_router
from ronda.users.schemas import MeRead
from ronda.users.service import me_view

router = domain_router(prefix="/auth", tags=["auth"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request"},
    401: {"description": "Bad credentials, or MFA_REQUIRED when a two-factor code is needed"},
    423: {"description": "Account locked; see Retry-After"},
    429: {"description": "Too many attempts from this address"},
}


async def limit_login_attempts(request: Request, runtime: RuntimeDep) -> None:
    """Login and refresh attempts are limited per client address, whoever they claim to be."""
    per_minute = runtime.settings.login_attempts_per_minute
    decision = await runtime.limiter.hit("login:" + request_ip(request), per_minute, per_minute)
    request.state.rate_decision = decision
    if not decision.allowed:
        raise AppError(429, f"Too many login attempts; retry in {decision.retry_after}s", headers=decision.headers())


LoginLimit = Depends(limit_login_attempts)


@router.post(
    "/login",
    summary="Log in with username or email and password",
    response_model=TokenResponse,
    operation_id="auth_login",
    responses=ERRORS,
    dependencies=[LoginLimit],
)
async def login(
    body: LoginRequest, session: SessionDep, runtime: RuntimeDep, actor: AnonymousActorDep
) -> Response:
    # Rendered here, once (response_model documents it): the login's locks are held until the commit,
    # which waits for the response to be built.
    return json_response((await service.login(session, runtime, body, actor)).model_dump())


@router.post(
    "/refresh",
    summary="Exchange a refresh token (body) or the current access token (Bearer) for new tokens",
    response_model=TokenResponse,
    operation_id="auth_refresh",
    responses=ERRORS,
    dependencies=[LoginLimit],
)
async def refresh(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: AnonymousActorDep,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> TokenResponse:
    if body is not None and body.refresh_token is not None:
        return await service.refresh_with_token(session, runtime, body.refresh_token, actor)
    principal = await get_principal(request)
    return await service.refresh_with_access(session, runtime, principal, await principal_actor(request, principal))


@router.post(
    "/logout",
    summary="Revoke the presented access token and its whole session at once",
    response_model=LogoutResponse,
    operation_id="auth_logout",
)
async def logout(principal: AuthenticatedDep, session: SessionDep, actor: ActorDep) -> LogoutResponse:
    return LogoutResponse(session_id=await service.logout(session, principal, actor))


@router.get(
    "/me",
    summary="The caller: user, role, tenant and effective permissions",
    response_model=MeRead,
    operation_id="auth_me",
)
async def me(principal: AuthenticatedDep, session: SessionDep) -> MeRead:
    return await me_view(session, principal)


@router.post(
    "/change-password",
    summary="Change your password (ends your other sessions)",
    response_model=Message,
    operation_id="auth_change_password",
)
async def change_password(
    body: ChangePassword, principal: AuthenticatedDep, session: SessionDep, runtime: RuntimeDep, actor: ActorDep
) -> Message:
    await service.change_password(session, runtime, principal, body.current_password, body.new_password, actor)
    return Message(detail="Password changed")


@router.post(
    "/2fa/setup",
    summary="Start TOTP enrolment: returns the secret and an otpauth:// URI",
    response_model=TwoFactorSetup,
    operation_id="auth_2fa_setup",
)
async def setup_2fa(principal: AuthenticatedDep, session: SessionDep, actor: ActorDep) -> TwoFactorSetup:
    return await service.start_2fa(session, principal, actor)


@router.post(
    "/2fa/confirm",
    summary="Confirm enrolment with a code; returns ten single-use recovery codes",
    response_model=TwoFactorEnabled,
    operation_id="auth_2fa_confirm",
)
async def confirm_2fa(
    body: TotpCode, principal: AuthenticatedDep, session: SessionDep, runtime: RuntimeDep, actor: ActorDep
) -> TwoFactorEnabled:
    return await service.confirm_2fa(session, runtime, principal, body.totp_code, actor)


@router.delete(
    "/2fa",
    summary="Turn two-factor authentication off (needs a current code)",
    response_model=Message,
    operation_id="auth_2fa_disable",
)
async def disable_2fa(body: TotpCode, principal: AuthenticatedDep, session: SessionDep, actor: ActorDep) -> Message:
    await service.disable_2fa(session, principal, body.totp_code, actor)
    return Message(detail="Two-factor authentication turned off")

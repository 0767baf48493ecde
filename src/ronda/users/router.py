from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from ronda.audit.deps import ActorDep
from ronda.core.authz import AuthenticatedDep, require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.users import service
from ronda.users.schemas import HumanRole, MeRead, MeUpdate, UserCreate, UserRead, UserUpdate

router = domain_router(prefix="/users", tags=["users"])

AdminDep = Annotated[Principal, Depends(require("users_manage"))]

BASE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the users_manage permission"},
}
ONE_USER_ERRORS: dict[int | str, dict[str, Any]] = {
    **BASE_ERRORS,
    404: {"description": "No such user in your tenant"},
    409: {"description": "The change would conflict (taken email, or acting on your own account)"},
}
CSV_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "The page as JSON, or every matching user as CSV with `?format=csv` or `Accept: text/csv`"},
}


@router.get("/me", summary="Your own profile, role, permissions and tenant", response_model=MeRead,
            operation_id="users_me", responses={401: BASE_ERRORS[401]})
async def me(request: Request, principal: AuthenticatedDep) -> Response:
    return await service.me_response(request, principal)


@router.patch(
    "/me", summary="Change your own name, email or password (email and password need current_password)",
    response_model=MeRead, operation_id="users_me_update",
    responses={400: BASE_ERRORS[400], 401: BASE_ERRORS[401],
               403: {"description": "API keys cannot change a profile"},
               409: {"description": "That email is already in use"}},
)
async def update_me(body: MeUpdate, principal: AuthenticatedDep, session: SessionDep, runtime: RuntimeDep,
                    actor: ActorDep) -> MeRead:
    return await service.update_me(session, runtime, principal, body, actor)


@router.get("", summary="List the users of your tenant (JSON page or CSV)", response_model=Page[UserRead],
            operation_id="users_list", responses={**BASE_ERRORS, **CSV_CONTENT})
async def list_users(
    principal: AdminDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    role: Annotated[HumanRole | None, Query(description="Only users with this role")] = None,
    is_active: Annotated[bool | None, Query(description="Only active (true) or deactivated (false) users")] = None,
) -> Page[UserRead] | StreamingResponse:
    if params.csv:
        return service.export_users(runtime, principal, params, role=role, is_active=is_active)
    return await service.list_users(session, principal, params, role=role, is_active=is_active)


@router.post("", status_code=201, summary="Create a user in your tenant", response_model=UserRead,
             operation_id="users_create",
             responses={**BASE_ERRORS, 409: {"description": "That username or email is already in use"}})
async def create_user(body: UserCreate, principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
                      actor: ActorDep) -> UserRead:
    return await service.create_user(session, runtime, principal, body, actor)


@router.get("/{user_id}", summary="One user of your tenant", response_model=UserRead, operation_id="users_get",
            responses={k: v for k, v in ONE_USER_ERRORS.items() if k != 409})
async def get_user(user_id: str, principal: AdminDep, session: SessionDep) -> UserRead:
    return await service.get_user(session, principal, user_id)


@router.patch(
    "/{user_id}",
    summary="Change a user's name, email, role, active state or password (role changes are audited)",
    response_model=UserRead, operation_id="users_update", responses=ONE_USER_ERRORS,
)
async def update_user(user_id: str, body: UserUpdate, principal: AdminDep, session: SessionDep,
                      runtime: RuntimeDep, actor: ActorDep) -> UserRead:
    return await service.update_user(session, runtime, principal, user_id, body, actor)


@router.delete("/{user_id}", summary="Deactivate a user: logins end, history stays", response_model=UserRead,
               operation_id="users_delete", responses=ONE_USER_ERRORS)
async def delete_user(user_id: str, principal: AdminDep, session: SessionDep, actor: ActorDep) -> UserRead:
    return await service.delete_user(session, principal, user_id, actor)


@router.post("/{user_id}/unlock", summary="Unlock an account locked after failed logins", response_model=UserRead,
             operation_id="users_unlock", responses={k: v for k, v in ONE_USER_ERRORS.items() if k != 409})
async def unlock_user(user_id: str, principal: AdminDep, session: SessionDep, actor: ActorDep) -> UserRead:
    return await service.unlock_user(session, principal, user_id, actor)

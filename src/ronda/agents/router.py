"""Agents: enrolment tokens (admin), enrolment (open, with a token), heartbeats, the list, revocation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Query
from starlette.responses import Response

from ronda.agents import service
from ronda.agents.schemas import (
    AgentEnroll,
    AgentEnrolled,
    AgentRead,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenRead,
    Heartbeat,
    HeartbeatAck,
)
from ronda.audit.deps import ActorDep, AnonymousActorDep
from ronda.auth.router import limit_login_attempts
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page, csv_response
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router

router = domain_router(prefix="/agents", tags=["agents"])

SettingsDep = Annotated[Principal, Depends(require("settings_manage"))]
ReaderDep = Annotated[Principal, Depends(require("devices_read"))]
AgentDep = Annotated[Principal, Depends(require("agent"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "The caller lacks the permission this route needs"},
}
CSV_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "A page as JSON, or every match as CSV with `?format=csv` or `Accept: text/csv`"},
}


@router.post("/tokens", status_code=201, response_model=EnrollmentTokenCreated, operation_id="agents_tokens_create",
             summary="Create an enrolment token (the token is shown only in this response)",
             responses={**ERRORS, 201: {"description": "The new token, shown once"}})
async def create_token(body: EnrollmentTokenCreate, principal: SettingsDep, session: SessionDep, runtime: RuntimeDep,
                       actor: ActorDep) -> EnrollmentTokenCreated:
    return await service.create_token(session, principal, body, actor, runtime.settings.api_key_prefix)


@router.get("/tokens", response_model=Page[EnrollmentTokenRead], operation_id="agents_tokens_list",
            summary="List enrolment tokens (never the tokens themselves)", responses={**ERRORS, **CSV_CONTENT})
async def list_tokens(
    principal: SettingsDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    active: Annotated[bool | None, Query(description="true: usable tokens; false: revoked, expired or used up")] = None,
) -> Page[EnrollmentTokenRead] | Response:
    statement = service.token_statement(principal, params, active=active)
    if params.csv:
        return csv_response(runtime.sessions, statement, service.token_csv_columns(), "agent-tokens.csv")
    return await service.list_tokens(session, statement, params)


@router.delete("/tokens/{token_id}", response_model=EnrollmentTokenRead, operation_id="agents_tokens_revoke",
               summary="Revoke an enrolment token; agents it enrolled keep working",
               responses={**ERRORS, 404: {"description": "No such token in your tenant"},
                          409: {"description": "The token is already revoked"}})
async def revoke_token(token_id: str, principal: SettingsDep, session: SessionDep,
                       actor: ActorDep) -> EnrollmentTokenRead:
    return await service.revoke_token(session, principal, token_id, actor)


@router.post("/enroll", status_code=201, response_model=AgentEnrolled, operation_id="agents_enroll",
             summary="Enrol this machine with a token: returns an agent credential bound to one device",
             dependencies=[Depends(limit_login_attempts)],
             responses={400: ERRORS[400],
                        401: {"description": "The token is unknown, expired, revoked or used up (nothing is written)"},
                        429: {"description": "Too many attempts from this address"},
                        201: {"description": "The agent's credential, shown once"}})
async def enroll(body: AgentEnroll, session: SessionDep, runtime: RuntimeDep,
                 actor: AnonymousActorDep) -> AgentEnrolled:
    return await service.enroll(session, body, actor, runtime.settings)


@router.post("/heartbeat", response_model=HeartbeatAck, operation_id="agents_heartbeat",
             summary="An agent's sign of life (agent credential only); says whether a full report is due",
             responses={**ERRORS, 403: {"description": "Only an agent credential may send heartbeats"}})
async def heartbeat(principal: AgentDep, session: SessionDep, runtime: RuntimeDep,
                    body: Annotated[Heartbeat | None, Body()] = None) -> HeartbeatAck:
    return await service.heartbeat(session, principal, body.agent_version if body else None, runtime.settings)


@router.get("", response_model=Page[AgentRead], operation_id="agents_list",
            summary="List enrolled agents with their online state (users: agents of their own devices)",
            responses={**ERRORS, **CSV_CONTENT})
async def list_agents(
    principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    device_id: Annotated[str | None, Query(max_length=40, description="Agents of this device")] = None,
    revoked: Annotated[bool | None, Query(description="Only revoked (true) or live (false) agents")] = None,
    is_online: Annotated[bool | None, Query(description="Heartbeat within RONDA_AGENT_OFFLINE_AFTER")] = None,
) -> Page[AgentRead] | Response:
    settings = runtime.settings
    statement = service.agent_statement(principal, params, settings, device_id=device_id, revoked=revoked,
                                        is_online=is_online)
    if params.csv:
        return csv_response(runtime.sessions, statement, service.agent_csv_columns(settings), "agents.csv")
    return await service.list_agents(session, statement, params, settings)


@router.delete("/{agent_id}", response_model=AgentRead, operation_id="agents_revoke",
               summary="Revoke an agent's credential; its device stays (unmanaged if no other agent is live)",
               responses={**ERRORS, 404: {"description": "No such agent in your tenant"},
                          409: {"description": "The agent is already revoked"}})
async def revoke_agent(agent_id: str, principal: SettingsDep, session: SessionDep, runtime: RuntimeDep,
                       actor: ActorDep) -> AgentRead:
    return await service.revoke_agent(session, principal, agent_id, actor, runtime.settings)

"""Dependencies that build the audit Actor for the current request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ronda.audit.service import Actor
from ronda.core.context import request_ip, request_user_agent
from ronda.core.principal import Principal, get_principal


async def anonymous_actor(request: Request) -> Actor:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    return Actor(actor_type="user", ip_address=request_ip(request), user_agent=request_user_agent(request))


async def principal_actor(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Actor:
    return Actor.of(principal, request_ip(request), request_user_agent(request))


async def request_actor(request: Request) -> Actor:
    # ActorDep's dependency takes the request alone (get_principal remembers the caller for the
    # request): one dependency fewer for FastAPI to solve on every request.
    return Actor.of(await get_principal(request), request_ip(request), request_user_agent(request))


AnonymousActorDep = Annotated[Actor, Depends(anonymous_actor)]
ActorDep = Annotated[Actor, Depends(request_actor)]

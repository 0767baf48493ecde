"""Dependencies that build the audit Actor for the current request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ronda.audit.service import Actor
from ronda.core.context import request_ip, request_user_agent
from ronda.core.principal import Principal, get_principal


def anonymous_actor(request: Request) -> Actor:
    return Actor(actor_type="user", ip_address=request_ip(request), user_agent=request_user_agent(request))


async def principal_actor(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Actor:
    return Actor.of(principal, request_ip(request), request_user_agent(request))


AnonymousActorDep = Annotated[Actor, Depends(anonymous_actor)]
ActorDep = Annotated[Actor, Depends(principal_actor)]

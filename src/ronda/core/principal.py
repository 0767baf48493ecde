"""Who is calling: a user (by token), an API key or an agent; their tenant and permissions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request

# Routes a token limited to MFA enrolment may still call.
MFA_SETUP_PATHS = ("/auth/2fa/setup", "/auth/2fa/confirm", "/auth/me", "/auth/logout", "/users/me")


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # user | api_key | agent
    user_id: str
    tenant_id: str
    role: str
    permissions: frozenset[str]
    email: str = ""
    username: str = ""
    session_id: str | None = None
    token_id: str | None = None
    api_key_id: str | None = None
    agent_id: str | None = None
    device_id: str | None = None
    rate_key: str = ""
    rate_tier: str = "standard"
    plan: str = "startup"
    daily_quota: int | None = None
    mfa_setup_only: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def actor_id(self) -> str:
        return self.agent_id or self.api_key_id or self.user_id

    @property
    def is_admin(self) -> bool:
        return self.role in ("admin", "super_admin")


class Authenticator(Protocol):
    async def authenticate(self, request: Request) -> Principal: ...


async def get_principal(request: Request) -> Principal:
    """Resolve the caller once per request; the authenticator is installed by create_app."""
    state: dict[str, object] = request.scope.setdefault("state", {})  # what request.state wraps
    cached = state.get("principal")
    if cached is not None:
        return cached  # type: ignore[return-value]
    authenticator: Authenticator = request.scope["app"].state.authenticator
    principal = await authenticator.authenticate(request)
    state["principal"] = principal
    return principal

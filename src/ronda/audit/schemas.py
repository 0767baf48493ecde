from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from ronda.core.schemas import OutputModel, UtcDatetime


class AuditLogRead(OutputModel):
    id: str
    tenant_id: str | None
    seq: int = Field(description="Position in the tenant's hash chain, from 1")
    event_name: str = Field(description="Human name of the event, e.g. 'User Login Success'")
    event_type: str = Field(description="Dotted event type, e.g. auth.login.succeeded")
    category: str
    actor_id: str | None
    actor_email: str | None
    actor_type: str = Field(description="user, api_key, agent or system")
    ip_address: str | None
    user_agent: str | None
    resource_type: str | None
    resource_id: str | None
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("details", "metadata"))
    created_at: UtcDatetime
    prev_hash: str
    hash: str


class BrokenRecord(OutputModel):
    id: str | None = Field(description="The first record that fails verification (none if the chain was cut)")
    seq: int | None
    event_type: str | None
    reason: str


class ChainVerification(OutputModel):
    valid: bool
    checked: int = Field(description="Records verified before the first broken one (all of them if valid)")
    first_broken: BrokenRecord | None
    chain: str
    verified_at: UtcDatetime

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

KeyKind = Literal["standard", "service"]
MAX_EXPIRY_DAYS = 3650


class ApiKeyCreate(InputModel):
    name: str = Field(..., min_length=1, max_length=100, description="What the key is for")
    permissions: list[str] = Field(
        ..., min_length=1, max_length=50,
        description="Scopes the key may use; each must be one you hold yourself",
    )
    expires_in_days: int | None = Field(
        None, ge=1, le=MAX_EXPIRY_DAYS, description="Days until the key stops working; none means never"
    )
    kind: KeyKind = Field("standard", description="service keys get the service rate tier (admins only)")


class ApiKeyCreated(OutputModel):
    """The only response that ever carries the key itself."""

    id: str
    key: str = Field(description="The full key; shown only now, store it safely")
    key_prefix: str = Field(description="The start of the key, to recognise it in listings")
    name: str
    permissions: list[str]
    kind: str
    user_id: str
    created_at: UtcDatetime
    expires_at: UtcDatetime | None


class ApiKeyRead(OutputModel):
    id: str
    name: str
    key_prefix: str
    permissions: list[str]
    kind: str
    user_id: str
    is_active: bool = Field(description="Neither revoked nor expired")
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class GrantablePermission(OutputModel):
    name: str
    description: str
    grantable: bool = Field(description="You hold this scope, so a key you create may have it")


class GrantablePermissionList(OutputModel):
    data: list[GrantablePermission]

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr, Field

from ronda.core.schemas import InputModel, OutputModel, Password, UtcDatetime

HumanRole = Literal["super_admin", "admin", "analyst", "operator", "user", "viewer"]
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{1,149}$"


class UserRead(OutputModel):
    id: str
    username: str
    email: str
    full_name: str
    role: str
    tenant_id: str
    is_active: bool
    mfa_enabled: bool
    locked_until: UtcDatetime | None
    last_login_at: UtcDatetime | None
    created_at: UtcDatetime


class MeRead(UserRead):
    permissions: list[str]
    auth_type: str = Field(description="user (token) or api_key")
    mfa_required: bool = Field(description="The tenant requires two-factor authentication")


class UserCreate(InputModel):
    username: str = Field(..., pattern=USERNAME_PATTERN)
    email: EmailStr
    full_name: str = Field("", max_length=200)
    password: Password = Field(..., max_length=256)
    role: HumanRole = "user"


class UserUpdate(InputModel):
    email: EmailStr | None = None
    full_name: str | None = Field(None, max_length=200)
    role: HumanRole | None = None
    is_active: bool | None = None
    password: Password | None = Field(None, max_length=256)


class MeUpdate(InputModel):
    """Own profile: name, email and password (with the current one). Never role or tenant."""

    full_name: str | None = Field(None, max_length=200)
    email: EmailStr | None = None
    password: Password | None = Field(None, max_length=256, description="New password")
    current_password: Password | None = Field(None, max_length=256)


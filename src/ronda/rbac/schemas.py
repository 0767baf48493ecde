from __future__ import annotations

from pydantic import Field

from ronda.core.schemas import OutputModel


class RoleRead(OutputModel):
    name: str
    description: str
    permissions: list[str] = Field(description="The scopes this role holds, sorted")


class PermissionRead(OutputModel):
    name: str
    description: str


class RoleList(OutputModel):
    data: list[RoleRead]


class PermissionList(OutputModel):
    data: list[PermissionRead]

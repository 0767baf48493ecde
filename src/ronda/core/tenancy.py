"""The ONE place that scopes a query to the caller's tenant. Every repository goes through it."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Delete, Select, Update

from ronda.core.principal import Principal

S = TypeVar("S", Select[Any], Update, Delete)


def scoped(statement: S, model: Any, principal: Principal | str) -> S:
    """Add `model.tenant_id == caller's tenant` to a select, update or delete."""
    tenant_id = principal if isinstance(principal, str) else principal.tenant_id
    if not tenant_id:
        raise PermissionError("a tenant-scoped query needs a tenant")
    return statement.where(model.tenant_id == tenant_id)

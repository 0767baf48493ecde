"""The ONE place that scopes a query to the caller's tenant. Every repository goes through it."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Delete, Select, Update

from ronda.core.principal import Principal

S = TypeVar("S", Select[Any], Update, Delete)


def tenant_clause(model: Any, principal: Principal | str) -> ColumnElement[bool]:
    """`model.tenant_id == caller's tenant`, for conditions that sit inside joins, aggregates and
    subqueries (report evidence), where a WHERE on the outer statement cannot go."""
    tenant_id = principal if isinstance(principal, str) else principal.tenant_id
    if not tenant_id:
        raise PermissionError("a tenant-scoped query needs a tenant")
    condition: ColumnElement[bool] = model.tenant_id == tenant_id
    return condition


def scoped(statement: S, model: Any, principal: Principal | str) -> S:
    """Add `model.tenant_id == caller's tenant` to a select, update or delete."""
    return statement.where(tenant_clause(model, principal))

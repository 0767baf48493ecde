"""The shared list machinery: both pagination styles, sort, search, filters and CSV streaming."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import StreamingResponse

from ronda.core.db import write_intent
from ronda.core.errors import AppError
from ronda.core.timeutil import iso

DEFAULT_LIMIT = 100
MAX_PER_PAGE = 1000
MAX_LIMIT = 100
CSV_BATCH = 500

T = TypeVar("T")


class PageMeta(BaseModel):
    total: int
    page: int
    per_page: int
    skip: int
    limit: int


class Page(BaseModel, Generic[T]):
    data: list[T]
    meta: PageMeta


@dataclass(frozen=True, slots=True)
class ListParams:
    skip: int
    limit: int
    sort: str | None
    search: str | None
    csv: bool

    def meta(self, total: int) -> PageMeta:
        return PageMeta(
            total=total, page=self.skip // self.limit + 1, per_page=self.limit, skip=self.skip, limit=self.limit
        )


def list_params_dependency(default_limit: int = DEFAULT_LIMIT) -> Callable[..., Awaitable[ListParams]]:
    """Build the dependency; `default_limit` differs only for the seeds' documented 50."""

    # async although it never awaits: FastAPI runs a plain `def` dependency in a worker thread,
    # a hop (and a GIL hand-off) on every list request.
    async def dependency(
        request: Request,
        page: Annotated[int | None, Query(description="1-based page number (with per_page)")] = None,
        per_page: Annotated[int | None, Query(description=f"Items per page, 1 to {MAX_PER_PAGE}")] = None,
        skip: Annotated[int | None, Query(description="Items to skip (with limit)")] = None,
        limit: Annotated[int | None, Query(description=f"Items to return, 1 to {MAX_LIMIT}")] = None,
        sort: Annotated[str | None, Query(description="Field to sort by; prefix with - for descending")] = None,
        search: Annotated[str | None, Query(max_length=200, description="Free-text search")] = None,
        format: Annotated[str | None, Query(pattern="^(json|csv)$", description="json or csv")] = None,
    ) -> ListParams:
        problems = []
        if page is not None and page < 1:
            problems.append({"field": "page", "location": "query", "reason": "must be at least 1"})
        if per_page is not None and not 1 <= per_page <= MAX_PER_PAGE:
            problems.append({"field": "per_page", "location": "query", "reason": f"must be 1 to {MAX_PER_PAGE}"})
        if skip is not None and skip < 0:
            problems.append({"field": "skip", "location": "query", "reason": "must be 0 or more"})
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            problems.append({"field": "limit", "location": "query", "reason": f"must be 1 to {MAX_LIMIT}"})
        if (page is not None or per_page is not None) and (skip is not None or limit is not None):
            problems.append({"field": "page", "location": "query", "reason": "use page/per_page or skip/limit"})
        if (skip is not None and skip > 10_000_000) or (page is not None and page > 10_000_000):
            problems.append({"field": "skip", "location": "query", "reason": "is too large"})
        if problems:
            raise AppError(400, f"Invalid request: {problems[0]['field']}: {problems[0]['reason']}", details=problems)
        if page is not None or per_page is not None:
            size = per_page or default_limit
            offset = ((page or 1) - 1) * size
        else:
            size = limit or default_limit
            offset = skip or 0
        accept = request.headers.get("accept", "")
        wants_csv = format == "csv" or (format is None and "text/csv" in accept)
        return ListParams(skip=offset, limit=size, sort=sort, search=search, csv=wants_csv)

    return dependency


ListParamsDep = Annotated[ListParams, Depends(list_params_dependency())]


def apply_sort(statement: Select[Any], sort: str | None, fields: dict[str, Any], default: Sequence[Any]) -> Select[Any]:
    if not sort:
        return statement.order_by(*default)
    name = sort.lstrip("-")
    column = fields.get(name)
    if column is None:
        raise AppError(
            400,
            f"Cannot sort by '{name}'; choose one of {', '.join(sorted(fields))}",
            details=[{"field": "sort", "location": "query", "reason": f"unknown field {name}"}],
        )
    # NULLs last in both directions, so SQLite and PostgreSQL list the same order.
    ordered = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    return statement.order_by(ordered, *default)


def apply_search(statement: Select[Any], search: str | None, columns: Sequence[Any]) -> Select[Any]:
    if not search or not columns:
        return statement
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped.lower()}%"
    clauses: list[ColumnElement[bool]] = [func.lower(c).like(pattern, escape="\\") for c in columns]
    return statement.where(or_(*clauses))


async def fetch_page(session: AsyncSession, statement: Select[Any], params: ListParams) -> tuple[list[Any], int]:
    total = int(await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0)
    rows = (await session.scalars(statement.offset(params.skip).limit(params.limit))).all()
    return list(rows), total


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat") and hasattr(value, "tzinfo"):
        return iso(value) or ""
    if isinstance(value, list | tuple | set):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # Keep spreadsheet programs from executing a cell as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(
    sessions: async_sessionmaker[AsyncSession],
    statement: Select[Any],
    columns: Sequence[tuple[str, Callable[[Any], Any]]],
    filename: str,
) -> StreamingResponse:
    """Stream every row of `statement` (already scoped and filtered) as CSV, in batches."""

    async def rows() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([name for name, _ in columns])
        token = write_intent.set(False)
        try:
            async with sessions() as session:
                offset = 0
                while True:
                    batch = (await session.scalars(statement.offset(offset).limit(CSV_BATCH))).all()
                    for item in batch:
                        writer.writerow([csv_cell(get(item)) for _, get in columns])
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
                    if len(batch) < CSV_BATCH:
                        break
                    offset += CSV_BATCH
        finally:
            write_intent.reset(token)

    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)

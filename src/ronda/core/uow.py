"""The request's unit of work: one session, committed once at the end, rolled back on error."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.core.db import write_intent
from ronda.core.errors import AppError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UnitOfWorkRoute(APIRoute):
    """Wraps each route so its writes land together, before the response leaves."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            token = write_intent.set(request.method not in SAFE_METHODS)
            session: AsyncSession = request.app.state.sessions()
            request.state.session = session
            try:
                response = await inner(request)
                if session.in_transaction():
                    await session.commit()
                return response
            except AppError as exc:
                if exc.persist and session.in_transaction():
                    await session.commit()
                else:
                    await session.rollback()
                raise
            except BaseException:
                await session.rollback()
                raise
            finally:
                await session.close()
                write_intent.reset(token)

        return handler


def get_session(request: Request) -> AsyncSession:
    session: Any = request.state.session
    return session  # type: ignore[no-any-return]


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def domain_router(**kwargs: object) -> APIRouter:
    """Every domain's router: routes run inside the request's unit of work."""
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)  # type: ignore[arg-type]

"""The request's unit of work: one session, committed once at the end, rolled back on error."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.core import events
from ronda.core.db import write_intent
from ronda.core.errors import AppError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UnitOfWorkRoute(APIRoute):
    """Wraps each route so its writes land together, before the response leaves."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            token = write_intent.set(request.method not in SAFE_METHODS)
            # request.state's own dict: the State wrapper raises (and catches) for a missing name.
            state: dict[str, Any] = request.scope.setdefault("state", {})
            try:
                response = await inner(request)
                session: AsyncSession | None = state.get("session")
                if session is not None:
                    if session.in_transaction():
                        await session.commit()
                    await events.flush_to(getattr(request.app.state, "events", None), session)
                return response
            except AppError as exc:
                session = state.get("session")
                if session is not None:
                    if exc.persist and session.in_transaction():
                        await session.commit()
                        await events.flush_to(getattr(request.app.state, "events", None), session)
                    else:
                        events.discard(session)
                        await session.rollback()
                raise
            except BaseException:
                session = state.get("session")
                if session is not None:
                    events.discard(session)
                    await session.rollback()
                raise
            finally:
                session = state.get("session")
                if session is not None:
                    await session.close()
                write_intent.reset(token)

        return handler


def request_session(request: Request) -> AsyncSession:
    """The request's session, opened on first use: a route that never reads the database pays nothing."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    session: AsyncSession | None = state.get("session")
    if session is None:
        session = state["session"] = request.scope["app"].state.sessions()
    return session


async def get_session(request: Request) -> AsyncSession:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, one hop per request.
    return request_session(request)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def domain_router(**kwargs: object) -> APIRouter:
    """Every domain's router: routes run inside the request's unit of work."""
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)  # type: ignore[arg-type]

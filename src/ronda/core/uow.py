"""The request's unit of work: one session, committed once at the end, rolled back on error."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from ronda.core import events
from ronda.core.db import read_sessions, write_intent
from ronda.core.errors import AppError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


READ_ONLY = "_ronda_read_only"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def read_only(endpoint: Endpoint) -> Endpoint:
    """Mark a GET route that never writes through the request's session: on PostgreSQL its statements
    run in autocommit (core.db.read_sessions), without BEGIN and COMMIT round trips.
    Put it under the route decorator."""
    setattr(endpoint, READ_ONLY, True)
    return endpoint


class UnitOfWorkRoute(APIRoute):
    """Wraps each route so its writes land together, before the response leaves."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        reads_only = bool(getattr(self.endpoint, READ_ONLY, False))

        async def handler(request: Request) -> Response:
            token = write_intent.set(request.method not in SAFE_METHODS)
            # request.state's own dict: the State wrapper raises (and catches) for a missing name.
            state: dict[str, Any] = request.scope.setdefault("state", {})
            if reads_only and request.method in SAFE_METHODS:
                state["read_only"] = True
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
        sessions: async_sessionmaker[AsyncSession] = request.scope["app"].state.sessions
        session = state["session"] = (read_sessions(sessions) if state.get("read_only") else sessions)()
        preload = state.get("preload")
        if preload is not None:  # rows authentication vouches for (auth/callers.py): no query for them
            preload(session.sync_session)
    return session


async def get_session(request: Request) -> AsyncSession:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, one hop per request.
    return request_session(request)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def domain_router(**kwargs: object) -> APIRouter:
    """Every domain's router: routes run inside the request's unit of work."""
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)  # type: ignore[arg-type]

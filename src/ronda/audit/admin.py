"""Audit operations for the CLI."""

from __future__ import annotations

from ronda.audit.service import ChainReport, all_chains, verify_chain
from ronda.config import Settings
from ronda.core.db import create_engine, create_session_factory, transaction


async def verify_all(settings: Settings, tenant_id: str | None = None) -> list[ChainReport]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(create_session_factory(engine), write=False) as session:
            chains = [tenant_id] if tenant_id else await all_chains(session)
            return [await verify_chain(session, chain) for chain in chains]
    finally:
        await engine.dispose()

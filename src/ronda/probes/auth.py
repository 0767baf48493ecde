"""The probe API's credential: a probe key (`<prefix>_probe_<48 hex>`, SHA-256 digest stored), bound
to one site of one tenant. It opens the probe API only; every other route refuses it (401, like an
unknown API key), and a user's credentials on the probe API get 403."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from ronda.auth.authenticator import extract_credential
from ronda.core.context import request_ip
from ronda.core.db import transaction
from ronda.core.errors import AppError
from ronda.core.principal import get_principal
from ronda.core.security import same, secret_digest
from ronda.probes.models import Probe
from ronda.tenants.models import Tenant

MARKER = "_probe_"
KEY_HEX_BYTES = 24
PREFIX_HEX_CHARS = 8


def mint_probe_key(prefix: str) -> tuple[str, str]:
    """(the key, its displayable prefix)."""
    key = f"{prefix}{MARKER}{secrets.token_hex(KEY_HEX_BYTES)}"
    return key, key[: len(prefix) + len(MARKER) + PREFIX_HEX_CHARS]


@dataclass(frozen=True, slots=True)
class ProbeCaller:
    probe_id: str
    tenant_id: str
    site_id: str
    name: str
    ip: str | None


async def probe_caller(request: Request) -> ProbeCaller:
    credential = extract_credential(request)
    if credential and MARKER in credential:
        digest = secret_digest(credential) if len(credential) <= 120 else ""
        # A short read of its own: the lease route long-polls and must not hold a transaction open.
        async with transaction(request.app.state.sessions, write=False) as session:
            row = (await session.execute(
                select(Probe, Tenant.is_active).join(Tenant, Tenant.id == Probe.tenant_id)
                .where(Probe.key_hash == digest)
            )).first()
        if row is not None:
            probe, tenant_active = row
            if same(probe.key_hash, digest) and probe.revoked_at is None and tenant_active:
                return ProbeCaller(probe.id, probe.tenant_id, probe.site_id, probe.name, request_ip(request))
        raise AppError(401, "Invalid or revoked probe key", headers={"WWW-Authenticate": "Bearer"})
    await get_principal(request)  # no credential, or a bad one: 401
    raise AppError(403, "Only a probe key may call the probe API")


ProbeCallerDep = Annotated[ProbeCaller, Depends(probe_caller)]

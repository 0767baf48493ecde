"""Writing audit records in the caller's transaction, and verifying the chains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit.chain import GENESIS, SYSTEM_CHAIN, record_digest
from ronda.audit.events import describe
from ronda.audit.models import AuditHead, AuditLog
from ronda.core.ids import new_id
from ronda.core.principal import Principal
from ronda.core.timeutil import utcnow

REDACT = ("password", "secret", "token", "totp", "key", "code")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it and from where; carried from the request into every record."""

    actor_type: str = "system"
    actor_id: str | None = None
    actor_email: str | None = None
    tenant_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, principal: Principal, ip: str | None, user_agent: str | None) -> Actor:
        return cls(
            actor_type="api_key" if principal.kind == "api_key" else principal.kind,
            actor_id=principal.actor_id,
            actor_email=principal.email or None,
            tenant_id=principal.tenant_id,
            ip_address=ip,
            user_agent=user_agent,
        )

    def but(self, **changes: Any) -> Actor:
        values = {f: getattr(self, f) for f in self.__slots__}
        values.update(changes)
        return Actor(**values)


def _clean(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Secrets never reach the log, even if a caller passes them by mistake."""
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if any(word in key.lower() for word in REDACT) and key not in ("api_key_id", "key_prefix"):
            out[key] = "[redacted]"
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


async def _lock_head(session: AsyncSession, chain: str) -> AuditHead:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(AuditHead).values(chain=chain, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["chain"])
    )
    head = (
        await session.execute(
            select(AuditHead)
            .where(AuditHead.chain == chain)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return head


async def record(
    session: AsyncSession,
    actor: Actor,
    event_type: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> AuditLog:
    """Append one record to the tenant's chain, in the same transaction as the change."""
    tenant = tenant_id if tenant_id is not None else actor.tenant_id
    chain = tenant or SYSTEM_CHAIN
    head = await _lock_head(session, chain)
    name, category = describe(event_type)
    entry = AuditLog(
        tenant_id=tenant,
        chain=chain,
        seq=head.seq + 1,
        event_type=event_type,
        event_name=name,
        category=category,
        actor_id=actor.actor_id,
        actor_email=actor.actor_email,
        actor_type=actor.actor_type,
        ip_address=actor.ip_address,
        user_agent=(actor.user_agent or "")[:300] or None,
        resource_type=resource_type,
        resource_id=resource_id,
        details=_clean(metadata),
        created_at=utcnow(),
        prev_hash=head.hash,
    )
    entry.id = new_id("evt")
    entry.hash = record_digest(entry, head.hash)
    head.seq = entry.seq
    head.hash = entry.hash
    session.add(entry)
    await session.flush()
    return entry


@dataclass
class ChainReport:
    chain: str
    valid: bool
    checked: int
    first_broken: dict[str, Any] | None


async def verify_chain(session: AsyncSession, chain: str, batch: int = 1000) -> ChainReport:
    """Walk one chain in order; name the first record whose hash, link or position is wrong."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.chain == chain, AuditLog.seq > last_seq)
                .order_by(AuditLog.seq)
                .limit(batch)
            )
        ).all()
        for entry in rows:
            problem = None
            if entry.seq != expected_seq:
                problem = f"sequence gap: expected {expected_seq}, found {entry.seq} (records deleted)"
            elif entry.prev_hash != prev_hash:
                problem = "link broken: prev_hash does not match the previous record"
            elif record_digest(entry, entry.prev_hash) != entry.hash:
                problem = "content changed: the record's hash does not match its fields"
            if problem:
                broken = {"id": entry.id, "seq": entry.seq, "event_type": entry.event_type, "reason": problem}
                return ChainReport(chain, False, checked, broken)
            prev_hash, expected_seq, last_seq = entry.hash, entry.seq + 1, entry.seq
            checked += 1
        if len(rows) < batch:
            break
    head = await session.get(AuditHead, chain)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        broken = {
            "id": None,
            "seq": head.seq,
            "event_type": None,
            "reason": f"chain truncated: head says {head.seq} records, found {expected_seq - 1}",
        }
        return ChainReport(chain, False, checked, broken)
    return ChainReport(chain, True, checked, None)


async def all_chains(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(AuditHead.chain).order_by(AuditHead.chain))).all())

"""Verify one audit chain for a report: the same checks as audit.service.verify_chain, on plain rows.

Reading rows (not ORM objects) in large batches keeps the verification of a big tenant's log to
about the cost of hashing it; the digest itself is audit.chain.record_digest, so both agree exactly.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit.chain import GENESIS, record_digest
from ronda.audit.models import AuditHead, AuditLog
from ronda.audit.service import ChainReport

BATCH = 5000
COLUMNS = (AuditLog.id, AuditLog.tenant_id, AuditLog.chain, AuditLog.seq, AuditLog.event_type, AuditLog.event_name,
           AuditLog.category, AuditLog.actor_id, AuditLog.actor_email, AuditLog.actor_type, AuditLog.ip_address,
           AuditLog.user_agent, AuditLog.resource_type, AuditLog.resource_id, AuditLog.details, AuditLog.created_at,
           AuditLog.prev_hash, AuditLog.hash)


async def verify(session: AsyncSession, chain: str) -> ChainReport:
    prev_hash, expected, checked = GENESIS, 1, 0
    while True:
        rows = (await session.execute(
            select(*COLUMNS).where(AuditLog.chain == chain, AuditLog.seq >= expected).order_by(AuditLog.seq)
            .limit(BATCH))).all()
        for row in rows:
            problem = None
            if row.seq != expected:
                problem = f"sequence gap: expected {expected}, found {row.seq} (records deleted)"
            elif row.prev_hash != prev_hash:
                problem = "link broken: prev_hash does not match the previous record"
            elif record_digest(cast(Any, row), row.prev_hash) != row.hash:
                problem = "content changed: the record's hash does not match its fields"
            if problem:
                return ChainReport(chain, False, checked, {"id": row.id, "seq": row.seq,
                                                           "event_type": row.event_type, "reason": problem})
            prev_hash, expected = row.hash, row.seq + 1
            checked += 1
        if len(rows) < BATCH:
            break
    head = await session.get(AuditHead, chain)
    if head is not None and (head.seq != expected - 1 or head.hash != prev_hash):
        return ChainReport(chain, False, checked, {
            "id": None, "seq": head.seq, "event_type": None,
            "reason": f"chain truncated: head says {head.seq} records, found {expected - 1}"})
    return ChainReport(chain, True, checked, None)

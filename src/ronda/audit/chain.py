"""The hash chain: what a record's hash covers, so append and verify agree exactly."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ronda.audit.models import AuditLog
from ronda.core.timeutil import as_utc

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def record_digest(record: AuditLog, prev_hash: str) -> str:
    created = as_utc(record.created_at)
    body: dict[str, Any] = {
        "id": record.id,
        "tenant_id": record.tenant_id,
        "chain": record.chain,
        "seq": record.seq,
        "event_type": record.event_type,
        "event_name": record.event_name,
        "category": record.category,
        "actor_id": record.actor_id,
        "actor_email": record.actor_email,
        "actor_type": record.actor_type,
        "ip_address": record.ip_address,
        "user_agent": record.user_agent,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "metadata": record.details or {},
        "created_at": created.isoformat(timespec="microseconds") if created else None,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

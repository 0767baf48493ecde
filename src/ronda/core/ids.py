"""Opaque, prefixed, roughly time-ordered identifiers (dev_…, user_…, tenant_…)."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    # 48-bit millisecond clock + 64 random bits: sortable by creation, unguessable.
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"

"""TOTP with replay protection, and single-use recovery codes stored as SHA-256 digests."""

from __future__ import annotations

import secrets
import time

import pyotp
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.auth.models import RecoveryCode
from ronda.core.security import same, secret_digest
from ronda.core.timeutil import utcnow
from ronda.users.models import User

ISSUER = "Ronda"
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def otpauth_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step a code belongs to (allowing one step of clock drift), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    for drift in (0, -1, 1):
        step = int(moment // 30) + drift
        if same(totp.generate_otp(step), code):
            return step
    return None


def verify_totp(user: User, code: str, secret: str | None = None) -> bool:
    """Accept a code once: a step at or before the last one used is a replay."""
    secret = secret or user.totp_secret
    if not secret:
        return False
    step = totp_step(secret, code)
    if step is None or step <= (user.totp_last_step or 0):
        return False
    user.totp_last_step = step
    return True


def _normalise(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


async def issue_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(tenant_id=user.tenant_id, user_id=user.id, code_hash=secret_digest(raw)))
    await session.flush()
    return codes


async def use_recovery_code(session: AsyncSession, user: User, code: str) -> bool:
    digest = secret_digest(_normalise(code))
    result = await session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == digest, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    return (result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def remaining_recovery_codes(session: AsyncSession, user_id: str) -> int:
    rows = await session.scalars(
        select(RecoveryCode.id).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return len(rows.all())


async def clear_recovery_codes(session: AsyncSession, user_id: str) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

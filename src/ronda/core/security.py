"""Password hashing (Argon2id, explicit parameters, capped concurrency), JWTs and API-key digests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ronda.core.timeutil import utcnow

JWT_ALGORITHM = "HS256"
JWT_ISSUER = "ronda"
JWT_AUDIENCE = "ronda-api"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


class Passwords:
    """Argon2id with the parameters from settings; hashing runs in threads, at most N at once."""

    def __init__(self, memory_kib: int, time_cost: int, parallelism: int, concurrency: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Verified against when a user does not exist, so timing does not reveal which usernames exist.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify_sync(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self.verify_sync, stored, password)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Password must be at most {MAX_PASSWORD_LENGTH} characters"
    if len(set(password)) < 4:
        return "Password is too repetitive"
    return None


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    tenant_id: str
    session_id: str
    token_id: str
    token_type: str
    scope: str
    expires_at: int


class Tokens:
    """HS256 JWTs with issuer, audience, expiry and a session id; nothing else is accepted."""

    def __init__(self, secret: str, access_ttl: int, refresh_ttl: int) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(
        self, *, subject: str, tenant_id: str, session_id: str, token_type: str, scope: str = "full"
    ) -> tuple[str, str, int]:
        ttl = self.access_ttl if token_type == "access" else self.refresh_ttl
        now = utcnow()
        token_id = secrets.token_hex(16)
        claims = {
            "sub": subject,
            "tid": tenant_id,
            "sid": session_id,
            "jti": token_id,
            "typ": token_type,
            "scp": scope,
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM), token_id, ttl

    def decode(self, token: str, expected_type: str) -> TokenClaims | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=JWT_AUDIENCE,
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        if claims.get("typ") != expected_type:
            return None
        try:
            return TokenClaims(
                subject=str(claims["sub"]),
                tenant_id=str(claims["tid"]),
                session_id=str(claims["sid"]),
                token_id=str(claims["jti"]),
                token_type=str(claims["typ"]),
                scope=str(claims.get("scp", "full")),
                expires_at=int(claims["exp"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def mint_api_key(prefix: str) -> str:
    return f"{prefix}_live_{secrets.token_hex(24)}"


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def secret_digest(value: str) -> str:
    """SHA-256 for high-entropy secrets (API keys, recovery codes, enrolment tokens)."""
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())

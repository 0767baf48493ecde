"""The authenticator remembers verified access-token signatures, never a token's validity."""

from __future__ import annotations

import time

import httpx
import pytest

from ronda.auth import authenticator as module
from ronda.auth.authenticator import Authenticator
from ronda.core.ratelimit import DisabledRateLimiter
from ronda.core.security import Tokens
from tests.conftest import Factory
from tests.support import assert_error

SECRET = "memo-secret-" + "m" * 40


def _issue(tokens: Tokens, subject: str = "usr_1", token_type: str = "access") -> str:
    token, _, _ = tokens.issue(subject=subject, tenant_id="ten_1", session_id="ses_1", token_type=token_type)
    return token


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens(SECRET, 60, 600)
    auth = Authenticator(tokens, DisabledRateLimiter(), None)  # type: ignore[arg-type]
    token = _issue(tokens)
    claims = auth._claims(token)
    assert claims is not None and claims.subject == "usr_1"
    assert auth._claims(token) is claims  # remembered: not verified again
    monkeypatch.setattr(time, "time", lambda: claims.expires_at + 1)
    assert auth._claims(token) is None


def test_only_valid_access_tokens_are_remembered_and_only_so_many(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens(SECRET, 60, 600)
    auth = Authenticator(tokens, DisabledRateLimiter(), None)  # type: ignore[arg-type]
    assert auth._claims(_issue(tokens, token_type="refresh")) is None
    assert auth._claims(_issue(Tokens("another-" + "x" * 40, 60, 600))) is None
    assert auth._claims(_issue(tokens)[:-2] + "AA") is None
    assert auth._verified == {}
    monkeypatch.setattr(module, "VERIFIED_TOKENS", 3)
    for n in range(5):
        assert auth._claims(_issue(tokens, subject=f"usr_{n}")) is not None
    assert len(auth._verified) == 3


async def test_logout_refuses_the_remembered_token_at_once(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer")
    for _ in range(3):  # used, and so remembered
        assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=user.headers)).status_code in (200, 204)
    assert_error(await client.get("/api/v1/users/me", headers=user.headers), 401, "UNAUTHORIZED")

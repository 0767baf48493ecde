"""Login attempts across server processes: one address has one budget, whichever process it reaches.

(The per-credential budgets and the tenant quota across processes: tests/ratelimit/test_shared_redis.py.)
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, Factory
from tests.ratelimit.support import outside_minute_edge, rate_headers, statuses
from tests.scaled.conftest import Pair, random_address
from tests.scaled.support import LOGIN
from tests.support import assert_error


async def test_login_attempts_of_one_address_are_counted_once_across_processes(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    if not pair.redis:
        pytest.skip("without Redis each process counts its own attempts")
    user = await factory.user("viewer", login=False)
    await outside_minute_edge(8)
    attempts = []
    for i in range(10):  # right and wrong passwords alike, alternated across the processes
        password = PASSWORD if i % 3 == 0 else "not the password!"
        attempts.append(await http.post(pair[i] + LOGIN, json={"username": user.username, "password": password}))
    assert statuses(attempts) == [200 if i % 3 == 0 else 401 for i in range(10)]
    assert [rate_headers(r)[:2] for r in attempts] == [(10, n) for n in range(9, -1, -1)]
    for i in range(2):  # the eleventh and twelfth, on either process: refused before the password is read
        refused = await http.post(pair[i] + LOGIN, json={"username": user.username, "password": PASSWORD})
        assert_error(refused, 429, "RATE_LIMITED")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another address is not held back.
    other = await http.post(pair[1] + LOGIN, headers={"X-Forwarded-For": random_address()},
                            json={"username": user.username, "password": PASSWORD})
    assert other.status_code == 200, other.text

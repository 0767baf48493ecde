"""Property-based: whatever page/per_page or skip/limit a client asks for, pages are exact slices of
the one ordered list, meta agrees with them, and out-of-range values get a 400, never a 500."""

from __future__ import annotations

import asyncio

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Factory, LiveServer

USERS = "/api/v1/users"
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def test_pages_are_slices_of_one_ordered_list(live: LiveServer, factory: Factory) -> None:
    admin = await factory.user("admin")
    for _ in range(22):
        await factory.user("viewer", tenant_id=admin.tenant_id)

    def check() -> None:
        with httpx.Client(base_url=live.url, headers=admin.headers, timeout=30) as http:
            full = http.get(USERS, params={"per_page": 1000, "sort": "username"}).json()
            names = [user["username"] for user in full["data"]]
            assert full["meta"]["total"] == len(names) == 23 and names == sorted(names)

            @PROPERTY_SETTINGS
            @given(page=st.integers(1, 30), per_page=st.integers(1, 30))
            def by_page(page: int, per_page: int) -> None:
                body = http.get(USERS, params={"page": page, "per_page": per_page, "sort": "username"}).json()
                assert [u["username"] for u in body["data"]] == names[(page - 1) * per_page: page * per_page]
                assert body["meta"] == {"total": 23, "page": page, "per_page": per_page,
                                        "skip": (page - 1) * per_page, "limit": per_page}

            @PROPERTY_SETTINGS
            @given(skip=st.integers(0, 40), limit=st.integers(1, 100), descending=st.booleans())
            def by_offset(skip: int, limit: int, descending: bool) -> None:
                order = names[::-1] if descending else names
                sort = "-username" if descending else "username"
                body = http.get(USERS, params={"skip": skip, "limit": limit, "sort": sort}).json()
                assert [u["username"] for u in body["data"]] == order[skip: skip + limit]
                assert body["meta"]["total"] == 23 and body["meta"]["skip"] == skip

            bad_values = st.one_of(
                st.fixed_dictionaries({"page": st.integers(-5, 0)}),
                st.fixed_dictionaries({"per_page": st.one_of(st.integers(-5, 0), st.integers(1001, 10**6))}),
                st.fixed_dictionaries({"limit": st.one_of(st.integers(-5, 0), st.integers(101, 10**6))}),
                st.fixed_dictionaries({"skip": st.integers(-10**6, -1)}),
                st.fixed_dictionaries({"page": st.text(alphabet="abcxyz-_.~ ", min_size=1, max_size=8)}),
                st.fixed_dictionaries({"page": st.integers(1, 5), "limit": st.integers(1, 5)}),
            )

            @PROPERTY_SETTINGS
            @given(params=bad_values)
            def refused(params: dict[str, object]) -> None:
                response = http.get(USERS, params=params)  # type: ignore[arg-type]
                assert response.status_code == 400, (params, response.text)
                assert response.json()["error"]["code"] == "BAD_REQUEST"

            by_page()
            by_offset()
            refused()

    await asyncio.to_thread(check)

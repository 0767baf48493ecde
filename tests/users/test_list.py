"""GET /users: filters, search, sort, both pagination styles, CSV, and its query count."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from tests.conftest import Account, Factory
from tests.support import assert_error


async def populated(factory: Factory) -> tuple[Account, list[Account]]:
    """An admin and five more users in a fresh tenant (one of them deactivated)."""
    admin = await factory.user("admin")
    others = [
        await factory.user(role, tenant_id=admin.tenant_id, login=False)
        for role in ("viewer", "viewer", "analyst", "operator", "user")
    ]
    return admin, others


async def test_filters_and_search(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, others = await populated(factory)
    await client.delete(f"/api/v1/users/{others[1].id}", headers=admin.headers)

    async def ids(**params: Any) -> set[str]:
        response = await client.get("/api/v1/users", headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return {u["id"] for u in response.json()["data"]}

    assert await ids(role="viewer") == {others[0].id, others[1].id}
    assert await ids(role="viewer", is_active="true") == {others[0].id}
    assert await ids(is_active="false") == {others[1].id}
    assert await ids(search=others[2].username.upper()) == {others[2].id}
    assert await ids(search=others[3].email) == {others[3].id}
    assert await ids(search=others[4].username.title()) == {others[4].id}  # full_name is the title-cased name
    assert await ids(search="%") == set()
    assert len(await ids()) == 6
    assert_error(await client.get("/api/v1/users?role=root", headers=admin.headers), 400, "BAD_REQUEST")
    assert_error(await client.get("/api/v1/users?is_active=maybe", headers=admin.headers), 400, "BAD_REQUEST")


async def test_sorting(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, others = await populated(factory)

    async def column(sort: str, field: str) -> list[Any]:
        response = await client.get("/api/v1/users", headers=admin.headers, params={"sort": sort})
        assert response.status_code == 200, response.text
        return [u[field] for u in response.json()["data"]]

    names = await column("username", "username")
    assert names == sorted(names)
    assert await column("-username", "username") == sorted(names, reverse=True)
    emails = await column("-email", "email")
    assert emails == sorted(emails, reverse=True)
    roles = await column("role", "role")
    assert roles == sorted(roles)
    created = await column("created_at", "created_at")
    assert created == sorted(created)
    await factory.login(others[0])
    logins = [value for value in await column("-last_login_at", "last_login_at") if value is not None]
    assert len(logins) == 2 and logins == sorted(logins, reverse=True)
    bad = await client.get("/api/v1/users?sort=password_hash", headers=admin.headers)
    assert "Cannot sort by" in assert_error(bad, 400, "BAD_REQUEST")["detail"]


async def test_pagination_both_styles(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, _ = await populated(factory)
    everyone = (await client.get("/api/v1/users?sort=username", headers=admin.headers)).json()
    assert everyone["meta"] == {"total": 6, "page": 1, "per_page": 100, "skip": 0, "limit": 100}
    order = [u["id"] for u in everyone["data"]]

    page2 = (await client.get("/api/v1/users?sort=username&page=2&per_page=4", headers=admin.headers)).json()
    assert page2["meta"] == {"total": 6, "page": 2, "per_page": 4, "skip": 4, "limit": 4}
    assert [u["id"] for u in page2["data"]] == order[4:]

    sliced = (await client.get("/api/v1/users?sort=username&skip=1&limit=2", headers=admin.headers)).json()
    assert sliced["meta"] == {"total": 6, "page": 1, "per_page": 2, "skip": 1, "limit": 2}
    assert [u["id"] for u in sliced["data"]] == order[1:3]

    beyond = (await client.get("/api/v1/users?page=9&per_page=5", headers=admin.headers)).json()
    assert beyond["data"] == [] and beyond["meta"]["total"] == 6


async def test_seed_form_with_skip_and_limit(client: httpx.AsyncClient, factory: Factory) -> None:
    """004 seed: `GET /users (Admin)` under https://host/v1 with skip/limit."""
    admin, _ = await populated(factory)
    response = await client.get("/v1/users", headers=admin.headers, params={"skip": 0, "limit": 5})
    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 5 and body["meta"]["limit"] == 5 and body["meta"]["total"] == 6
    rest = (await client.get("/v1/users", headers=admin.headers, params={"skip": 5, "limit": 5})).json()
    assert len(rest["data"]) == 1
    assert {u["id"] for u in body["data"]}.isdisjoint({u["id"] for u in rest["data"]})
    seed_000 = await client.get("/api/users?page=1&per_page=50", headers=admin.headers)
    assert seed_000.status_code == 200 and seed_000.json()["meta"]["per_page"] == 50


async def test_out_of_range_paging_is_400(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for query in ("per_page=0", "per_page=1001", "limit=101", "limit=0", "page=0", "skip=-1",
                  "page=1&limit=10", "per_page=abc", "format=xml"):
        response = await client.get(f"/api/v1/users?{query}", headers=admin.headers)
        error = assert_error(response, 400, "BAD_REQUEST")
        assert error["error"]["details"], query
    ok = await client.get("/api/v1/users?per_page=1000", headers=admin.headers)
    assert ok.status_code == 200 and ok.json()["meta"]["per_page"] == 1000


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_csv_export(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, others = await populated(factory)
    await factory.user("viewer")  # another tenant: never exported
    by_format = await client.get("/api/v1/users?format=csv&sort=username", headers=admin.headers)
    assert by_format.status_code == 200
    assert by_format.headers["content-type"].startswith("text/csv")
    disposition = by_format.headers["content-disposition"]
    assert disposition.startswith("attachment") and 'filename="users.csv"' in disposition
    header = by_format.text.splitlines()[0].split(",")
    assert header[:5] == ["id", "username", "email", "full_name", "role"]
    assert {"is_active", "last_login_at", "created_at", "tenant_id"} <= set(header)
    assert "password_hash" not in header
    rows = parse_csv(by_format)
    assert [r["username"] for r in rows] == sorted(a.username for a in [admin, *others])
    assert {r["tenant_id"] for r in rows} == {admin.tenant_id}
    assert all(r["created_at"].endswith("Z") for r in rows)

    by_accept = await client.get("/api/v1/users", headers={**admin.headers, "Accept": "text/csv"},
                                 params={"role": "viewer"})
    assert by_accept.headers["content-type"].startswith("text/csv")
    assert {r["id"] for r in parse_csv(by_accept)} == {others[0].id, others[1].id}

    empty = await client.get("/api/v1/users?format=csv&search=nobody-matches-this", headers=admin.headers)
    assert empty.text.strip().split(",")[0] == "id" and len(empty.text.strip().splitlines()) == 1
    assert_error(await client.get("/api/v1/users?format=csv&sort=nope", headers=admin.headers), 400)


@contextmanager
def count_statements(factory: Factory) -> Iterator[list[str]]:
    engine = factory.runtime.engine.sync_engine
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_list_query_count_does_not_grow_with_users(client: httpx.AsyncClient, factory: Factory) -> None:
    """NetBox-style baseline: authenticate (1, none once the caller is remembered), count (1), page (1),
    whatever the page holds."""
    admin = await factory.user("admin")
    assert (await client.get("/api/v1/users", headers=admin.headers)).status_code == 200
    with count_statements(factory) as small:
        assert (await client.get("/api/v1/users", headers=admin.headers)).status_code == 200
    for _ in range(12):
        await factory.user("viewer", tenant_id=admin.tenant_id, login=False)
    with count_statements(factory) as large:
        response = await client.get("/api/v1/users", headers=admin.headers)
        assert len(response.json()["data"]) == 13
    assert len(small) == len(large) <= 3, large

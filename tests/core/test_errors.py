"""Every failure answers with the contract's JSON error body and leaks nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Factory, LiveServer, make_settings, start_server
from tests.support import assert_error


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    assert_error(await client.get("/totally/elsewhere"), 404, "NOT_FOUND")
    assert_error(await client.put("/api/v1/auth/login", json={}), 405, "METHOD_NOT_ALLOWED")


async def test_malformed_json_wrong_types_and_unknown_fields(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    body = assert_error(await client.post("/api/v1/auth/login", content=b'{"username": "a",', headers=headers), 400)
    assert body["error"]["details"][0]["field"] == "body"
    wrong_type = await client.post("/api/v1/auth/login", json={"username": "a", "password": 123})
    details = assert_error(wrong_type, 400, "BAD_REQUEST")["error"]["details"]
    assert any(d["field"] == "password" for d in details)
    unknown = await client.post("/api/v1/auth/login", json={"username": "a", "password": "b", "role": "admin"})
    assert any(d["field"] == "role" for d in assert_error(unknown, 400)["error"]["details"])
    missing = await client.post("/api/v1/auth/login", json={"password": "b"})
    assert_error(missing, 400)
    assert_error(await client.post("/api/v1/auth/login", json=[1, 2]), 400)


async def test_oversized_bodies_get_413(client: httpx.AsyncClient) -> None:
    huge = b'{"username": "' + b"a" * 2_000_000 + b'", "password": "x"}'
    response = await client.post("/api/v1/auth/login", content=huge, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 65536

    streamed = await client.post("/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")


async def test_unexpected_exception_is_a_bare_500(migrated: str, data_dir: Path) -> None:
    server: LiveServer = await start_server(make_settings(migrated, data_dir))
    try:

        @server.app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret internals: SELECT * FROM users")

        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.get("/boom")
        body = assert_error(response, 500, "INTERNAL_ERROR")
        assert "secret" not in response.text and "SELECT" not in response.text
        assert body["detail"] == "Internal server error"
        assert response.headers["x-request-id"]
    finally:
        await server.stop()


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    mine = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] not in ("", "bad id with spaces")
    error = await client.get("/api/v1/nope")
    assert error.headers["x-request-id"]


async def test_prefix_aliases_reach_the_same_routes(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer")
    for prefix in ("/api/v1", "/api", "/v1"):
        response = await client.get(f"{prefix}/auth/me", headers=user.headers)
        assert response.status_code == 200, prefix
        assert response.json()["id"] == user.id
    for path in ("/health", "/api/health", "/api/v1/health"):
        response = await client.get(path)
        assert response.json() == {"status": "ok", "version": response.json()["version"], "database": "ok"}


async def test_openapi_lists_only_canonical_routes_with_summaries(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert all(p.startswith("/api/v1/") for p in paths), [p for p in paths if not p.startswith("/api/v1/")]
    assert "/api/v1/auth/login" in paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation.get("operationId"), f"{method} {path} has no operation id"
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()

"""The OpenAPI document: our error body on every operation, credentials declared, no 422s.

FastAPI documents validation failures as 422 with its own schema; Ronda answers 400 with the
contract's error body, so the document is corrected once, when first requested.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

OPEN_OPERATIONS = frozenset({"health", "auth_login", "auth_refresh", "agents_enroll"})
ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["detail", "error"],
    "properties": {
        "detail": {"type": "string", "description": "Human-readable message"},
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["NOT_FOUND"]},
                "message": {"type": "string"},
                "details": {"description": "Per-field problems for BAD_REQUEST, else null"},
            },
        },
    },
}
DESCRIPTIONS = {
    "400": "Invalid request (BAD_REQUEST; details lists each field and reason)",
    "401": "Missing, invalid, expired or revoked credentials (UNAUTHORIZED)",
    "403": "The caller lacks the permission this route needs (FORBIDDEN)",
    "404": "Not found, or belongs to another tenant (NOT_FOUND)",
    "413": "Request body too large (PAYLOAD_TOO_LARGE)",
    "429": "Rate limited (RATE_LIMITED); see Retry-After",
    "409": "Conflicts with the current state (CONFLICT): already exists, already done, or not allowed now",
    "415": "Unsupported Content-Encoding or media type (UNSUPPORTED_MEDIA_TYPE)",
    "423": "Account locked after failed logins (LOCKED); see Retry-After",
    "500": "Unexpected error (INTERNAL_ERROR); no internals are returned",
    "503": "The database (or Redis) is unavailable (SERVICE_UNAVAILABLE); retry shortly",
}
MUTATING = frozenset({"post", "put", "patch", "delete"})
LOCKING_OPERATIONS = frozenset({"auth_login", "auth_refresh"})


def _error(status: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    description = (existing or {}).get("description") or DESCRIPTIONS.get(status, "Error")
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["429", "500", "503"]
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append("400")
    if operation.get("requestBody"):
        statuses += ["413", "415"]
    if method.lower() in MUTATING:
        statuses.append("409")
    if operation.get("operationId") in LOCKING_OPERATIONS:
        statuses.append("423")
    if operation.get("operationId") not in OPEN_OPERATIONS:
        statuses += ["401", "403"]
    if "{" in path:
        statuses.append("404")
    return statuses


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["ErrorBody"] = ERROR_SCHEMA
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Access token (JWT) or API key"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status in _statuses(path, method, operation):
                    responses[status] = _error(status, responses.get(status))
                if operation.get("operationId") not in OPEN_OPERATIONS:
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

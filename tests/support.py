"""Assertions shared by the tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error body: detail plus error.code/message/details, and nothing internal."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"detail", "error"}, body
    assert body["error"]["message"] == body["detail"]
    if code:
        assert body["error"]["code"] == code, body
    text_body = response.text.lower()
    assert "traceback" not in text_body and "sqlalchemy" not in text_body
    return dict(body)

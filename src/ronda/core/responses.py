"""orjson responses: the fast path for every JSON body."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response


class ORJSONResponse(JSONResponse):
    """A JSONResponse (so OpenAPI documents the response model) rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return ORJSONResponse(content, status_code=status_code, headers=headers)

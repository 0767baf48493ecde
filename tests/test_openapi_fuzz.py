"""Schemathesis against the live /openapi.json with a super admin's credentials.

Every documented operation gets generated requests, valid ones (positive) and invalid ones
(negative): no answer may be a 5xx, and every answer must match what the document says (a
documented status code and content type, a body matching the response schema). The server is the
real one on loopback, the database the suite's. RONDA_TEST_FUZZ_EXAMPLES sets the examples per
operation and mode (default 8).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Factory, LiveServer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Would end the caller's own session or change its password in the middle of the run.
SKIPPED = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/change-password")}


async def test_every_operation_holds_to_its_documentation(live: LiveServer, factory: Factory) -> None:
    admin = await factory.user("super_admin")
    examples = int(os.environ.get("RONDA_TEST_FUZZ_EXAMPLES", "8"))

    def fuzz() -> list[str]:
        schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
        problems: list[str] = []
        checked = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue
            checked += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Any) -> None:
                    response = case.call(base_url=live.url, headers=admin.headers, timeout=30)
                    case.validate_response(response, checks=CHECKS)

                try:
                    run()
                except Unsatisfiable:
                    pass  # nothing invalid to send (an operation without parameters or body)
                except Exception as exc:  # a failure: keep going, report them all at once
                    problems.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"[:1500])
        assert checked > 40, f"only {checked} operations in /openapi.json"
        return problems

    problems = await asyncio.to_thread(fuzz)
    assert not problems, "\n\n".join(problems)

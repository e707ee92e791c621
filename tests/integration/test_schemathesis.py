"""Property-based contract test: schemathesis drives the running app from its own OpenAPI.

Every generated request (valid and invalid bodies, paths, query strings) must get an answer
that is not a server error and that matches the documented responses. schemathesis's lazy
pytest fixture loader does not run under this pytest, so the test walks the operations and
drives each one's hypothesis strategy itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from robocall.api.auth import API_KEY_HEADER, OPERATOR_KEY_HEADER
from tests.support.api_server import RunningApi

EXAMPLES_PER_OPERATION = 50
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_every_generated_request_gets_a_documented_answer_and_no_server_error(
    start_api: Callable[..., RunningApi],
):
    # given the running app, a key, and the contract it serves
    api = start_api(rate_limit_per_minute=100_000)
    _, key = api.new_key()
    operator_key = api.new_operator_key()
    schema = schemathesis.openapi.from_url(api.url("/v1/openapi.json"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "POST /v1/call",
        "GET /v1/status/{requestId}",
        "DELETE /v1/call/{requestId}",
        "GET /v1/lines",
        "PUT /v1/lines",
        "GET /v1/webhooks/deliveries",
        "GET /v1/organizations",
        "GET /v1/organizations/{orgId}/lines",
        "PUT /v1/organizations/{orgId}/lines",
    }
    # each operation gets the credential its security names (a tenant's or the operator's)
    credentials = {API_KEY_HEADER: key, OPERATOR_KEY_HEADER: operator_key}
    answered: dict[str, set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            # when each generated request is sent
            response = case.call(base_url=api.base_url, headers=credentials)
            # then its answer is documented and never a 5xx
            case.validate_response(response, checks=CHECKS)
            answered.setdefault(case.operation.label, set()).add(response.status_code)

        call()

    # and both operations were exercised, the POST with both good and bad bodies
    assert set(answered) == {op.label for op in operations}
    assert {200, 400} <= answered["POST /v1/call"]

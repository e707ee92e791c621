"""``GET /metrics`` scraped over HTTP from a running robocall after real calls on FakeSwitch."""

from __future__ import annotations

import secrets

import pytest

from robocall.testing import Callee
from tests.support.metrics import only_switch, scrape, total, value, wait_for_metrics

pytestmark = pytest.mark.usefixtures("repo")

ANSWERS = "+6581000001"
BUSY = "+6581000002"
NO_ANSWER = "+6581000003"
HOLDS = "+6581000004"  # rings (a line in use) until the test hangs it up


def test_metrics_after_real_calls(start_service):
    # given an organization with 3 lines, one of them held by another app's call
    running = start_service(
        {
            BUSY: Callee(outcome="busy", ring=False),
            NO_ANSWER: Callee(outcome="no_answer"),
            HOLDS: Callee(answer_after_ms=600_000),
        },
        lines=3,
    )
    org = running.org_id
    running.fake.start_external_call({"accountcode": org})
    before = wait_for_metrics(
        running, lambda s: value(s, "robocall_lines_in_use", organization=org, origin="other") == 1,
        "the other app's line",
    )
    assert value(before, "robocall_esl_connected") == 1
    # and the one switch is shown on its own: reached, the other app's channel on it, full pace
    switch = only_switch(before)
    assert value(before, "robocall_switch_connected", switch=switch) == 1
    assert value(before, "robocall_switch_sessions", switch=switch) == 1
    assert value(before, "robocall_switch_sessions_cap", switch=switch) > 0
    assert value(before, "robocall_switch_dial_rate_factor", switch=switch) == 1.0
    assert value(before, "robocall_lines", organization=org) == 3
    assert value(before, "robocall_lines_free", organization=org) == 2
    assert value(before, "robocall_queue_depth", organization=org) == 0

    # when a request of four calls runs: one holds its line, so the others share the last one
    request_id = f"metrics-{secrets.token_hex(3)}"
    body = {
        "requestId": request_id,
        "destinations": [
            {"phone": number, "caller": "+6582674904"}
            for number in (HOLDS, ANSWERS, BUSY, NO_ANSWER)
        ],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Your parcel is here."}}]},
    }
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200

    # then while the held call rings, its line shows as robo next to the other app's
    held = wait_for_metrics(
        running,
        lambda s: value(s, "robocall_lines_in_use", organization=org, origin="robo") >= 1
        and total(s, "robocall_calls_ended_total", organization=org, status="failed") == 2
        and total(s, "robocall_calls_ended_total", organization=org, status="completed") == 1,
        "the held call and the three others ended",
    )
    assert value(held, "robocall_lines_in_use", organization=org, origin="other") == 1
    assert value(held, "robocall_queue_depth", organization=org) == 0

    # when the held call is hung up, the request completes
    for channel in running.fake.channels():
        if channel.variables.get("robocall_call_id"):
            channel.hangup("CALL_REJECTED")
    final = running.wait_until_final(request_id)
    after = wait_for_metrics(
        running,
        lambda s: value(s, "robocall_requests_completed_total", organization=org) == 1,
        "the completed request",
    )

    # then every dial and every outcome of the status is counted, by status and hangup cause
    assert value(after, "robocall_dials_total", organization=org) == 4
    outcomes: dict[tuple[str, str], int] = {}
    for detail in final["details"]:
        key = (detail["status"], detail["hangupCause"])
        outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes[("failed", "USER_BUSY")] == 1
    for (status, cause), count in outcomes.items():
        assert value(after, "robocall_calls_ended_total", organization=org, status=status,
                     hangup_cause=cause) == count
    assert value(after, "robocall_calls_answered_total", organization=org) == 1
    assert value(after, "robocall_call_steps_total", step="play", status="success_ok") >= 1
    assert value(after, "robocall_lines_in_use", organization=org, origin="robo") == 0
    # and reused lines were timed from hangup to the next originate
    assert value(after, "robocall_dispatch_delay_seconds_count") >= 1
    assert value(after, "robocall_dispatch_delay_seconds_bucket", le="+Inf") == value(
        after, "robocall_dispatch_delay_seconds_count"
    )


def test_each_service_has_its_own_registry(start_service):
    # given two services in one process
    first, second = start_service(lines=2), start_service(lines=5)
    # then each scrape shows its own organizations' lines only
    one, two = scrape(first), scrape(second)
    assert value(one, "robocall_lines", organization=first.org_id) == 2
    assert value(two, "robocall_lines", organization=second.org_id) == 5
    assert ("robocall_dials_total", (("organization", first.org_id),)) not in two

"""Calls end to end: the seed's request through the public API, dialled on FakeSwitch, every
callee behaviour reported as the contract says (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import secrets

import pytest

from robocall.testing import Callee, Press
from tests.support.api_server import backend_of
from tests.support.requests_data import seed_with
from tests.support.service import ServiceStarter, step_rows

PRESSES_1 = "+6580000001"
PRESSES_0 = "+6580000002"
PRESSES_9 = "+6580000003"
SILENT = "+6580000004"
BUSY = "+6580000005"
NO_ANSWER = "+6580000006"
REJECTS = "+6580000007"
HANGS_UP_EARLY = "+6580000008"
UNREACHABLE = "+6580000009"

# Digits are pressed half a second into the first gather's prompt, as a person would.
DURING_GATHER = {"at_ms": 500, "on_prompt": 1}

CALLEES = {
    PRESSES_1: Callee(presses=(Press(digits="1", **DURING_GATHER),)),
    PRESSES_0: Callee(presses=(Press(digits="0", **DURING_GATHER),)),
    PRESSES_9: Callee(presses=(Press(digits="9", **DURING_GATHER),)),
    SILENT: Callee(),
    BUSY: Callee(outcome="busy", ring=False),
    NO_ANSWER: Callee(outcome="no_answer"),
    REJECTS: Callee(outcome="reject", ring=False),
    HANGS_UP_EARLY: Callee(hangup_after_ms=300),
    UNREACHABLE: Callee(outcome="network_failure", ring=False),
    "1000": Callee(answer_after_ms=500, hangup_after_ms=2000),
}


def _seed_to(numbers: list[str], request_id: str) -> dict:
    body = seed_with(request_id, destinations=len(numbers))
    for destination, number in zip(body["destinations"], numbers, strict=True):
        destination["phone"] = number
    return body


@pytest.fixture(scope="module")
def seed_results(database_url, tmp_path_factory):
    """The seed example posted unchanged but for its numbers, one per callee behaviour."""
    starter = ServiceStarter(backend_of(database_url), tmp_path_factory.mktemp("seed"))
    try:
        yield _run_seed(starter)
    finally:
        starter.stop_all()


def _run_seed(starter):
    running = starter(CALLEES, lines=10)
    numbers = list(CALLEES)[:-1]
    request_id = f"seed-{secrets.token_hex(3)}"
    body = _seed_to(numbers, request_id)
    running.warm_prompts(body)
    response = running.post_call(body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "submitted"
    final = running.wait_until_final(request_id)
    return running, final, running.calls_by_destination(final)


def test_every_call_of_the_seed_request_ends_final(seed_results):
    _, final, calls = seed_results
    assert final["status"] == "completed"
    assert sum(final["counts"].values()) == 9
    assert final["counts"] == {"completed": 5, "failed": 4}
    assert all(detail["status"] in ("completed", "failed") for detail in calls.values())


def test_press_1_runs_the_nested_gather_then_its_default_play(seed_results):
    _, _, calls = seed_results
    detail = calls[PRESSES_1]
    assert detail["status"] == "completed"
    assert step_rows(detail) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("gather", "sucess_ok", "ongoing", "1", ""),
        # the nested gather hears nothing three times, then takes its default branch
        ("gather", "error_no_input", "ongoing", "", ""),
        ("play", "sucess_ok", "ended", "", ""),
    ]
    assert detail["hangupCause"] == "NORMAL_CLEARING"
    assert detail["answeredAt"] is not None and detail["durationSeconds"] > 0
    assert [leg["type"] for leg in detail["monitorData"]] == ["call"]
    assert detail["monitorData"][0]["dest"] == PRESSES_1


@pytest.mark.parametrize(("number", "pressed"), [(PRESSES_0, "0"), (PRESSES_9, "9")])
def test_press_0_or_an_unknown_key_transfers_to_extension_1000(seed_results, number, pressed):
    # 0 is a branch; 9 matches none and goes to the default branch, which is the same one
    _, _, calls = seed_results
    detail = calls[number]
    assert detail["status"] == "completed"
    assert step_rows(detail) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("gather", "sucess_ok", "ongoing", pressed, ""),
        ("transfer", "sucess_ok", "ended", "", "answered"),
    ]
    legs = detail["monitorData"]
    assert [(leg["type"], leg["dest"]) for leg in legs] == [("call", number), ("transfer", "1000")]
    assert all(leg["uuid"] for leg in legs)


def test_silence_three_times_takes_the_default_branch(seed_results):
    _, _, calls = seed_results
    assert step_rows(calls[SILENT]) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("gather", "error_no_input", "ongoing", "", ""),
        ("transfer", "sucess_ok", "ended", "", "answered"),
    ]


@pytest.mark.parametrize(
    ("number", "cause", "call_status"),
    [
        (BUSY, "USER_BUSY", "busy"),
        (NO_ANSWER, "NO_ANSWER", "no_answer"),
        (REJECTS, "CALL_REJECTED", "failed"),
        (UNREACHABLE, "NORMAL_TEMPORARY_FAILURE", "failed"),
    ],
)
def test_unanswered_calls_fail_with_the_switch_cause_and_one_entry_saying_why(
    seed_results, number, cause, call_status
):
    _, _, calls = seed_results
    detail = calls[number]
    assert detail["status"] == "failed"
    assert detail["hangupCause"] == cause
    # no step ran; the one entry (the first step's) carries the contract's call_status
    assert detail["callFlowSteps"] == [{
        "stepName": "play",
        "info": {
            "call_state": "ended",
            "call_status": call_status,
            "status": "error_not_answered",
            "userPressedDigits": "",
            "transfer_status": "",
        },
    }]
    assert detail["answeredAt"] is None


def test_hanging_up_mid_message_ends_the_step_with_error_hangup(seed_results):
    _, _, calls = seed_results
    detail = calls[HANGS_UP_EARLY]
    assert detail["status"] == "completed"
    assert step_rows(detail) == [("play", "error_hangup", "ended", "", "")]
    assert detail["hangupCause"] == "NORMAL_CLEARING"


def test_recordings_are_served_to_their_organization_only(seed_results):
    running, _, calls = seed_results
    answered = calls[PRESSES_0]
    response = running.get(f"/v1/recordings/{answered['callId']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.content[:4] == b"RIFF" and len(response.content) > 44
    # another organization's key gets a 404, as for a call that does not exist
    _, other_key = running.new_organization()
    assert running.get(f"/v1/recordings/{answered['callId']}", key=other_key).status_code == 404
    assert running.get("/v1/recordings/999999999").status_code == 404
    # a call that was never answered has no recording
    assert running.get(f"/v1/recordings/{calls[BUSY]['callId']}").status_code == 404

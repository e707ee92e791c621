"""Transfers, placeholders per destination and a large request, end to end on FakeSwitch."""

from __future__ import annotations

import secrets
import time

import gevent
import pytest

from robocall.calls.prompts import Prompts
from robocall.flow.model import Message
from robocall.testing import Callee, Press
from tests.support.service import SETTLE_SECONDS


def _transfer_body(request_id: str, destination: str, phones: list[str]) -> dict:
    return {
        "requestId": request_id,
        "destinations": [
            {"phone": phone, "caller": "+6582674904", "properties": {"name": "Alex"}}
            for phone in phones
        ],
        "callFlow": {
            "steps": [
                {"name": "play", "message": {"msg": "Connecting you, {{name}}"}},
                {"name": "transfer", "destination": destination},
            ]
        },
    }


@pytest.mark.parametrize(
    ("destination", "transfer_status", "step_status"),
    [
        ("Ext:1000", "answered", "sucess_ok"),
        ("Ext:1001", "busy", "error_transfer_failed"),
        ("Ext:1002", "no_answer", "error_transfer_failed"),
        ("+6591991191", "answered", "sucess_ok"),
    ],
)
def test_transfer_outcomes(start_service, destination, transfer_status, step_status):
    # given extensions that answer, are busy, never answer; and a number that answers
    running = start_service(
        {
            "1000": Callee(answer_after_ms=300, hangup_after_ms=1000),
            "1001": Callee(outcome="busy"),
            "1002": Callee(outcome="no_answer"),
            "+6591991191": Callee(answer_after_ms=300, hangup_after_ms=1000),
        },
        transfer_timeout_seconds=5,
    )
    body = _transfer_body(f"t-{secrets.token_hex(3)}", destination, ["+6580000001"])
    running.warm_prompts(body)
    # when the request runs
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    # then the transfer step reports the bridge's outcome, and the call is completed
    [detail] = final["details"]
    assert detail["status"] == "completed"
    play, transfer = detail["callFlowSteps"]
    assert play["info"]["status"] == "sucess_ok"
    assert transfer["stepName"] == "transfer"
    assert transfer["info"]["transfer_status"] == transfer_status
    assert transfer["info"]["status"] == step_status
    assert transfer["info"]["call_state"] == "ended"
    kinds = [leg["type"] for leg in detail["monitorData"]]
    assert kinds == (["call", "transfer"] if transfer_status == "answered" else ["call"])
    # the bridge carried the call's caller id, and its own robocall marks
    bridges = [c for c in running.fake.received if "execute-app-name: bridge" in c]
    assert len(bridges) == 1
    assert "origination_caller_id_number=+6582674904" in bridges[0]
    assert f"robocall_call_id={detail['callId']}" in bridges[0]
    # a transfer to a number takes a second line of the organization; an extension does not
    takes_line = f"accountcode={running.org_id}" in bridges[0]
    assert takes_line == destination.startswith("+")


def test_each_destination_hears_its_own_properties(start_service):
    running = start_service({})
    names = ["Alex", "Bea", "Chidi"]
    body = {
        "requestId": f"p-{secrets.token_hex(3)}",
        "destinations": [
            {"phone": f"+658000000{i}", "caller": "+6582674904", "properties": {"name": name}}
            for i, name in enumerate(names)
        ],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Dear {{name}}, hello"}}]},
    }
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    assert final["counts"] == {"completed": 3}
    # then each call played the audio of its own text: the files made for these texts
    prompts = Prompts(running.service.tts)
    message = Message("Dear {{name}}, hello")
    expected = {prompts.audio(message, {"name": name}) for name in names}
    assert len(expected) == len(names)
    played = {
        line.split(": ", 1)[1]
        for command in running.fake.received
        if "execute-app-name: playback" in command
        for line in command.splitlines()
        if line.startswith("execute-app-arg: ")
    }
    assert played == expected


def test_a_request_of_1000_destinations_runs_to_completion_in_order(start_service):
    # given 1000 destinations and 25 lines
    running = start_service({}, lines=25, cps=500.0, switch_cps=500.0)
    body = {
        "requestId": f"big-{secrets.token_hex(3)}",
        "destinations": [{"phone": f"+6581{i:06d}", "caller": "+6582674904"} for i in range(1000)],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Your parcel has arrived."}}]},
    }
    running.warm_prompts({**body, "destinations": body["destinations"][:1]})
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    # then every call completed, and they were dialled in destination order
    assert final["counts"] == {"completed": 1000}, [
        d for d in final["details"] if d["status"] != "completed"]
    originates = [c for c in running.fake.received if c.startswith("bgapi originate")]
    dialled = [c.split("sofia/gateway/robocall/")[1].split(" ")[0] for c in originates]
    assert dialled == [d["phone"] for d in body["destinations"]]
    page = running.status(body["requestId"], limit=1000)
    assert all(d["callFlowSteps"][0]["info"]["status"] == "sucess_ok" for d in page["details"])


def test_a_branch_on_the_pound_key_is_taken(start_service):
    # given a gather whose branch is '#' (so '#' cannot end the input) and a callee pressing it
    running = start_service({"+6580000001": Callee(presses=(Press(500, "#", on_prompt=1),))})
    body = {
        "requestId": f"pound-{secrets.token_hex(3)}",
        "destinations": [{"phone": "+6580000001", "caller": "+6582674904"}],
        "callFlow": {
            "steps": [
                {
                    "name": "gather",
                    "message": {"msg": "Press pound to hear it again."},
                    "branches": [
                        {
                            "digit": "#",
                            "callFlow": {
                                "steps": [{"name": "play", "message": {"msg": "Here it is again."}}]
                            },
                        },
                    ],
                }
            ]
        },
    }
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    # then the '#' branch ran
    [detail] = final["details"]
    assert [
        (s["stepName"], s["info"]["status"], s["info"]["userPressedDigits"])
        for s in detail["callFlowSteps"]
    ] == [
        ("gather", "sucess_ok", "#"),
        ("play", "sucess_ok", ""),
    ]
    gathers = [c for c in running.fake.received if "play_and_get_digits" in c]
    assert " none " in gathers[0]


def test_a_running_transfer_reads_as_an_ongoing_transfer_step_until_it_ends(start_service):
    # given an extension that rings a while, then talks a while
    running = start_service(
        {"1000": Callee(answer_after_ms=15_000, hangup_after_ms=20_000)},
        transfer_timeout_seconds=30,
    )
    body = _transfer_body(f"t-{secrets.token_hex(3)}", "Ext:1000", ["+6580000001"])
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200
    # when the status is polled while the call goes on
    seen: list[tuple[str, str, str, str]] = []
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        status = running.status(body["requestId"])
        [detail] = status["details"]
        steps = detail["callFlowSteps"]
        if len(steps) == 2:
            info = steps[1]["info"]
            moment = (steps[1]["stepName"], info["call_state"], info["status"],
                      info["transfer_status"])
            if not seen or seen[-1] != moment:
                seen.append(moment)
        if status["status"] == "completed":
            break
        gevent.sleep(0.05)
    # then the transfer was an ongoing step while it rang and while the callee talked, and
    # its final result replaced it
    assert seen == [
        ("transfer", "ongoing", "", ""),
        ("transfer", "ongoing", "", "answered"),
        ("transfer", "ended", "sucess_ok", "answered"),
    ]

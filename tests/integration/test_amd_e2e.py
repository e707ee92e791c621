"""Answering-machine detection end to end: robocall over HTTP, FakeSwitch callees that speak
(real flite audio written into the read-leg recording), every mode of ``machineDetection``."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

from robocall.testing import Callee
from robocall.testing.voice import Segment, segment_spans
from tests.integration.test_dashboard_auth import sign_in
from tests.support.receiver import Receiver
from tests.support.service import RunningService

pytestmark = pytest.mark.usefixtures("repo")

CALLER = "+6582674904"
HUMAN = "+6580000310"
MACHINE_BEEP = "+6580000311"
MACHINE_SILENT = "+6580000312"
GREETING = (
    "Hi, you have reached the voicemail of Alex Tan. I cannot take your call right now. "
    "Please leave your name and number after the tone."
)
SCRIPTS = {
    HUMAN: (Segment("silence", ms=600), Segment("say", text="Hello?", voice="kal"),
            Segment("silence", ms=8000)),
    MACHINE_BEEP: (Segment("silence", ms=500), Segment("say", text=GREETING, voice="slt"),
                   Segment("silence", ms=300), Segment("tone", ms=500, hz=1000.0),
                   Segment("silence", ms=20000)),
    MACHINE_SILENT: (Segment("silence", ms=300),
                     Segment("say", text="The subscriber you have dialled is not available. "
                             "Please leave a message.", voice="rms"),
                     Segment("silence", ms=20000)),
}
CALLEES = {
    number: Callee(answer_after_ms=100, hangup_after_ms=60_000, audio=script)
    for number, script in SCRIPTS.items()
}
# A flow long enough to be running when the verdict comes (~3 s into a greeting).
FLOW = {"steps": [
    {"name": "play", "message": {"msg": "Hello, this is the clinic calling about tomorrow."}},
    {"name": "play", "message": {"msg": "Your appointment is at ten in the morning."}},
]}
# Four messages: played whole, they run well past every verdict (the scaled-down time of the
# tests leaves a verdict less room to arrive while a shorter flow still runs).
LONG_FLOW = {"steps": FLOW["steps"] * 2}
LEFT_MESSAGE = {"msg": "Sorry we missed you, {{name}}. Please call the clinic back."}


def greeting_end_ms(number: str) -> float:
    """Where the callee's greeting (its last speech or tone) ends, in ms after the answer."""
    spans = segment_spans(SCRIPTS[number])
    return max(end for segment, _, end in spans if segment.kind in ("say", "tone"))


def _body(
    phones: list[str], detection: dict[str, Any] | None, flow: dict[str, Any] = FLOW
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestId": f"amd-{secrets.token_hex(3)}",
        "destinations": [
            {"phone": phone, "caller": CALLER, "properties": {"name": "Sam"}} for phone in phones
        ],
        "callFlow": flow,
    }
    if detection is not None:
        body["machineDetection"] = detection
    return body


def _run(running: RunningService, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    running.warm_prompts(body)
    response = running.post_call(body)
    assert response.status_code == 200, response.text
    return running.calls_by_destination(running.wait_until_final(body["requestId"]))


def _playbacks(running: RunningService, detail: dict[str, Any]) -> list[tuple[float, str]]:
    uuid = detail["monitorData"][0]["uuid"]
    return [(ms, target) for channel, ms, target in running.fake.playbacks if channel == uuid]


# Slower than the other end-to-end tests' 0.1. The recording no longer depends on robocall's
# speed (the switch starts it in the answer: api_on_answer), but what a verdict does still races
# the flow, which plays on the switch's clock: a machine must be found while the flow's messages
# still play, and robocall's reaction (a file read every 50 ms, then the call's greenlet) costs
# scripted time in proportion to 1/scale. At 0.1 one of three runs under a load average of up to ~90
# let the flow play out first (test_the_message_is_left_after_the_greeting).
AMD_TIME_SCALE = 0.25


@pytest.fixture
def running(start_service) -> RunningService:
    return start_service(CALLEES, time_scale=AMD_TIME_SCALE)


def test_continue_only_reports_who_answered(running):
    # given a person and two machines, mode continue
    phones = [HUMAN, MACHINE_BEEP, MACHINE_SILENT]
    calls = _run(running, _body(phones, {"mode": "continue"}, LONG_FLOW))
    # then each call's detail says who answered, and when
    assert calls[HUMAN]["answeredBy"] == "human", calls[HUMAN]
    assert calls[MACHINE_BEEP]["answeredBy"] == "machine"
    assert calls[MACHINE_SILENT]["answeredBy"] == "machine"
    # the person's verdict came after the "Hello?" and before 2.5 s; the machines' while they
    # still spoke
    assert 900 < calls[HUMAN]["answeredByMs"] < 2500
    for number in (MACHINE_BEEP, MACHINE_SILENT):
        assert calls[number]["answeredByMs"] < greeting_end_ms(number)
    # and the flow ran to its end for every one of them
    for detail in calls.values():
        assert detail["status"] == "completed"
        assert [s["info"]["status"] for s in detail["callFlowSteps"]] == ["sucess_ok"] * 4


def test_hangup_ends_a_machines_call_and_leaves_a_persons_alone(running):
    calls = _run(running, _body([HUMAN, MACHINE_SILENT], {"mode": "hangup"}, LONG_FLOW))
    machine = calls[MACHINE_SILENT]
    assert (machine["status"], machine["hangupCause"]) == ("failed", "MACHINE_DETECTED")
    assert machine["answeredBy"] == "machine"
    person = calls[HUMAN]
    assert (person["status"], person["answeredBy"]) == ("completed", "human")
    assert [s["info"]["status"] for s in person["callFlowSteps"]] == ["sucess_ok"] * 4


def test_a_machine_is_dialled_again_when_the_retry_policy_says_machine(running):
    body = _body([MACHINE_SILENT], {"mode": "hangup"}, LONG_FLOW)
    body["retry"] = {"maxAttempts": 2, "on": ["machine"], "backoffSeconds": 0}
    calls = _run(running, body)
    machine = calls[MACHINE_SILENT]
    assert (machine["status"], machine["hangupCause"]) == ("failed", "MACHINE_DETECTED")
    assert machine["attempt"] == 2


@pytest.mark.parametrize("number", [MACHINE_BEEP, MACHINE_SILENT])
def test_the_message_is_left_after_the_greeting(running, number):
    # given a machine, with or without a beep, in mode message
    detection = {"mode": "message", "message": LEFT_MESSAGE}
    calls = _run(running, _body([number], detection, LONG_FLOW))
    detail = calls[number]
    assert (detail["status"], detail["answeredBy"]) == ("completed", "machine")
    assert detail["hangupCause"] == "NORMAL_CLEARING"
    played = _playbacks(running, detail)
    # then the last file played is the message, begun after the greeting (and its beep) ended
    message_at, _ = played[-1]
    assert message_at >= greeting_end_ms(number)
    # and the flow stopped at the verdict: not all of its four messages were played
    assert len(played) - 1 < len(LONG_FLOW["steps"])
    assert len(detail["callFlowSteps"]) < len(LONG_FLOW["steps"])


def test_a_person_in_mode_message_gets_the_whole_flow(running):
    calls = _run(running, _body([HUMAN], {"mode": "message", "message": LEFT_MESSAGE}))
    person = calls[HUMAN]
    assert (person["status"], person["answeredBy"]) == ("completed", "human")
    assert [s["info"]["status"] for s in person["callFlowSteps"]] == ["sucess_ok"] * 2
    assert len(_playbacks(running, person)) == 2  # no machine message


def test_a_call_that_ends_before_a_verdict_is_unknown(start_service):
    # given a machine that hangs up 1 s into its greeting, before any rule can decide
    running = start_service({MACHINE_BEEP: Callee(
        answer_after_ms=100, hangup_after_ms=1000, audio=SCRIPTS[MACHINE_BEEP])},
        time_scale=AMD_TIME_SCALE)
    calls = _run(running, _body([MACHINE_BEEP], {"mode": "continue"}))
    # then its detail still says who answered: nobody knows
    assert calls[MACHINE_BEEP]["answeredBy"] == "unknown"


def test_the_switch_starts_the_recording_at_the_answer(running):
    # given a person, mode continue
    calls = _run(running, _body([HUMAN], {"mode": "continue"}))
    uuid = calls[HUMAN]["monitorData"][0]["uuid"]
    sent = running.fake.received
    # then the originate carried the read-leg recording for the switch to start in the answer
    originate = next(c for c in sent if "originate" in c and uuid in c)
    assert f"api_on_answer='uuid_record {uuid} start " in originate
    assert "{RECORD_READ_ONLY=true\\,enable_file_write_buffering=false}'}" in originate
    # robocall sent no start of its own, and stopped the recording once the verdict was in
    assert not [c for c in sent if c.startswith(f"api uuid_record {uuid} start")]
    assert [c for c in sent if c.startswith(f"api uuid_record {uuid} stop")]


def test_without_machine_detection_nothing_is_recorded_or_reported(running):
    calls = _run(running, _body([MACHINE_SILENT], None))
    assert "answeredBy" not in calls[MACHINE_SILENT]
    assert not [c for c in running.fake.received if "uuid_record" in c]
    assert not [c for c in running.fake.received if "api_on_answer" in c]


def test_verdicts_are_counted_in_metrics(running):
    _run(running, _body([HUMAN, MACHINE_SILENT], {"mode": "continue"}, LONG_FLOW))
    metrics = requests.get(f"{running.base_url}/metrics", timeout=30).text
    lines = [line for line in metrics.splitlines() if line.startswith("robocall_amd_verdicts")]
    assert any('answered_by="human"' in line and line.endswith(" 1.0") for line in lines), lines
    assert any('answered_by="machine"' in line and line.endswith(" 1.0") for line in lines)


@pytest.mark.parametrize(("detection", "field"), [
    ({"mode": "message"}, "machineDetection.message"),
    ({"mode": "voicemail"}, "machineDetection.mode"),
    ({"mode": "hangup", "beep": True}, "machineDetection"),
    ({"mode": "message", "message": {"msg": "Hi {{nickname}}"}}, "nickname"),
    ({"mode": "message", "message": {"msg": "Hi", "lang": "xx"}}, "machineDetection.message.lang"),
])
def test_a_bad_machine_detection_is_a_400_naming_the_field(running, detection, field):
    response = running.post_call(_body([HUMAN], detection))
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]


def test_webhooks_and_the_dashboard_show_who_answered(start_service):
    # given a request with a callback URL and mode continue
    receiver = Receiver().start()
    try:
        running = start_service(CALLEES, time_scale=AMD_TIME_SCALE,
                                webhook_backoff_seconds=0.05, rate_limit_per_minute=1_000_000,
                                webhook_allow_networks="127.0.0.0/8")  # the receiver's loopback
        body = _body([MACHINE_SILENT], {"mode": "continue"}, LONG_FLOW)
        body["callbackUrl"] = receiver.url
        calls = _run(running, body)
        # then a call.answered_by event carries the verdict, between the answer and the end
        receiver.wait_for(lambda: any(
            e["event"] == "call.completed" for e in receiver.events(body["requestId"])))
        events = [e for e in receiver.events(body["requestId"]) if e["event"] != "call.step"]
        names = [e["event"] for e in events if e["event"] != "request.completed"]
        assert names == ["call.dialing", "call.answered", "call.answered_by", "call.completed"]
        verdict = events[2]
        assert (verdict["answeredBy"], verdict["answeredByMs"]) == (
            "machine", calls[MACHINE_SILENT]["answeredByMs"])
        # and the dashboard's request page shows it in the call's row
        browser, _ = sign_in(running.base_url, running.key)
        page = browser.get(f"{running.base_url}/request?id={body['requestId']}", timeout=30)
        assert page.status_code == 200
        assert '<td class="answered-by">machine' in page.text
    finally:
        receiver.stop()

"""A slow switch is not a lost switch: late replies, dropped connections and an overloaded
switch never cost a live call, a line or a true status (FakeSwitch over TCP)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import gevent
import pytest

from robocall.testing import Callee
from robocall.testing.channels import Channel
from tests.support.service import RunningService, ServiceStarter, wait_for

pytestmark = pytest.mark.usefixtures("repo")

# ~25 s of speech: ~2.5 s of real time at the tests' time scale, long enough to cut the
# connection while it plays.
LONG_TEXT = " ".join(["Your appointment with the clinic is confirmed for Monday morning."] * 6)
COMMAND_TIMEOUT = 0.2


def _request(phones: list[str], text: str = "Hello, this is the clinic.") -> dict[str, Any]:
    return {
        "requestId": f"slow-{secrets.token_hex(3)}",
        "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": text}}]},
    }


def _post(running: RunningService, body: dict[str, Any]) -> None:
    running.warm_prompts(body)
    response = running.post_call(body)
    assert response.status_code == 200, response.text


def _robo_channels(running: RunningService) -> list[Channel]:
    return [c for c in running.fake.channels() if c.kind == "robo"]


def _steps(detail: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["stepName"], s["info"]["status"]) for s in detail["callFlowSteps"]]


def test_replies_later_than_the_command_timeout_cost_no_call_and_no_line(
    start_service: ServiceStarter,
) -> None:
    # given a switch whose every reply comes well after robocall's command timeout (it acts at
    # once, as a loaded FreeSWITCH does), 2 lines and 5 calls
    running = start_service(default=Callee(answer_after_ms=300, hangup_after_ms=60_000), lines=2)
    running.service.switch.command_timeout = COMMAND_TIMEOUT
    running.fake.reply_delay = 3 * COMMAND_TIMEOUT
    body = _request([f"+65810000{i:02d}" for i in range(5)])
    live: list[int] = []

    def sample() -> None:
        while True:
            live.append(len(_robo_channels(running)))
            gevent.sleep(0.005)

    # when the calls are dialled
    sampler = gevent.spawn(sample)
    _post(running, body)
    final = running.wait_until_final(body["requestId"])
    sampler.kill()
    peak = max(live)

    # then every call was followed to its real end: the prompt played, robocall hung up
    for detail in final["details"]:
        assert detail["status"] == "completed", detail
        assert _steps(detail) == [("play", "sucess_ok")]
        assert detail["hangupCause"] == "NORMAL_CLEARING"
    # and no channel was left on the switch, and the lines were never exceeded
    assert _robo_channels(running) == []
    assert 1 <= peak <= 2 and running.fake.switch.peak_sessions <= 2
    report = running.service.dispatcher.report(running.org_id)
    assert report is not None and (report.robo, report.in_flight) == (0, 0)


def test_a_call_playing_when_the_connection_drops_is_re_adopted_and_completes(
    start_service: ServiceStarter,
) -> None:
    # given a call playing a long prompt
    running = start_service(default=Callee(answer_after_ms=100, hangup_after_ms=120_000))
    body = _request(["+6581000100"], LONG_TEXT)
    _post(running, body)
    channel = wait_for(lambda: next((c for c in _robo_channels(running)
                                     if c.application == "playback"), None), "the playback")

    # when the switch drops robocall's connections while it plays (the call goes on)
    running.fake.drop_connections()
    wait_for(lambda: running.service.switch.connected, "the reconnect")

    # then the call is not given up: its line stays counted while it lives,
    report = running.service.dispatcher.report(running.org_id)
    assert report is not None and report.robo + report.in_flight == 1
    assert channel.up
    # and the prompt's end, reported after the reconnect, moves the flow on to its end
    final = running.wait_until_final(body["requestId"])
    detail = final["details"][0]
    assert detail["status"] == "completed", detail
    assert _steps(detail) == [("play", "sucess_ok")]
    assert detail["hangupCause"] == "NORMAL_CLEARING"
    assert _robo_channels(running) == []


def test_a_call_answered_while_robocall_was_cut_off_starts_its_flow_on_reconnect(
    start_service: ServiceStarter,
) -> None:
    # given a call still ringing
    running = start_service(default=Callee(answer_after_ms=1500, hangup_after_ms=120_000))
    body = _request(["+6581000200"])
    _post(running, body)
    channel = wait_for(lambda: next(iter(_robo_channels(running)), None), "the ringing channel")

    # when robocall is cut off from the switch until after the callee answered
    running.fake.accepting = False
    running.fake.drop_connections()
    wait_for(lambda: channel.answer_state == "answered" and channel.parked, "the answer")
    running.fake.accepting = True

    # then robocall finds the answered channel on reconnect and runs its flow
    final = running.wait_until_final(body["requestId"])
    detail = final["details"][0]
    assert detail["status"] == "completed", detail
    assert detail["answeredAt"]
    assert _steps(detail) == [("play", "sucess_ok")]
    assert _robo_channels(running) == []


def test_a_step_whose_end_was_lost_is_ended_by_robocall_with_a_cause_that_says_so(
    start_service: ServiceStarter,
) -> None:
    # given a call playing a long prompt
    running = start_service(default=Callee(answer_after_ms=100, hangup_after_ms=120_000))
    body = _request(["+6581000300"], LONG_TEXT)
    _post(running, body)
    channel = wait_for(lambda: next((c for c in _robo_channels(running)
                                     if c.application == "playback"), None), "the playback")

    # when robocall is cut off until the prompt has finished (its end is lost with the
    # connection; the callee waits in park)
    running.fake.accepting = False
    running.fake.drop_connections()
    wait_for(lambda: channel.variables.get("current_application_response") == "FILE PLAYED",
             "the end of the prompt")
    running.fake.accepting = True

    # then robocall, which cannot know what the step did, ends the call itself, and says so:
    # not completed with error_hangup, as if the callee had hung up
    final = running.wait_until_final(body["requestId"])
    detail = final["details"][0]
    assert detail["status"] == "failed", detail
    assert detail["hangupCause"] == "ROBOCALL_EVENTS_LOST"
    assert ("play", "error_hangup") not in _steps(detail)
    # and the channel is gone: robocall waited for the switch to confirm its end
    assert _robo_channels(running) == []
    report = running.service.dispatcher.report(running.org_id)
    assert report is not None and (report.robo, report.in_flight) == (0, 0)


def test_a_busy_machine_alone_does_not_slow_dialling_a_late_switch_does(
    start_service: ServiceStarter,
) -> None:
    # given robocall pacing at the switch's own budget (less its headroom), callees that
    # listen to the end
    running = start_service(default=Callee(answer_after_ms=100, hangup_after_ms=60_000), lines=4)
    dispatcher = running.service.dispatcher
    member = dispatcher.pool.first
    paced = dispatcher.read_switch_limits().legs_per_second(dispatcher.switch_cps)
    assert dispatcher.gate.switch.rate == pytest.approx(paced)

    # when the switch's heartbeat says its machine has no idle CPU, but it answers at once
    running.fake.heartbeat(idle_cpu=1.0)
    wait_for(lambda: member.health.idle_cpu == 1.0, "the heartbeat")
    body = _request([f"+65810004{i:02d}" for i in range(2)])
    _post(running, body)
    running.wait_until_final(body["requestId"])

    # then robocall still dials at the full pace: a busy neighbour is not a late switch
    assert member.health_factor == 1.0
    assert dispatcher.gate.switch.rate == pytest.approx(paced)

    # when the switch's replies also come late (acting at once, as a loaded FreeSWITCH does)
    running.fake.reply_delay = 0.6
    body = _request([f"+65810005{i:02d}" for i in range(3)])
    _post(running, body)
    final = running.wait_until_final(body["requestId"])

    # then the switch budget was cut (never to nothing), the gate told,
    assert 0.25 <= member.health_factor < 1.0
    assert dispatcher.gate.switch.rate == pytest.approx(paced * member.health_factor)
    # and no call was given up for it, nor a channel left
    for detail in final["details"]:
        assert detail["status"] == "completed", detail
        assert _steps(detail) == [("play", "sucess_ok")]
    assert _robo_channels(running) == []


def test_events_delivered_late_slow_dialling_and_cost_no_call(
    start_service: ServiceStarter,
) -> None:
    # given a switch robocall has heard on time (the event lag's base), on a busy machine
    running = start_service(default=Callee(answer_after_ms=100, hangup_after_ms=60_000), lines=4)
    member = running.service.dispatcher.pool.first
    body = _request(["+6581000600"])
    _post(running, body)
    running.wait_until_final(body["requestId"])
    running.fake.heartbeat(idle_cpu=1.0)
    wait_for(lambda: member.health.idle_cpu == 1.0, "the heartbeat")
    assert member.health_factor == 1.0

    # when its events come 0.6 s after the moments they carry, and calls are dialled
    running.fake.event_delay = 0.6
    body = _request([f"+65810006{i:02d}" for i in range(1, 4)])
    _post(running, body)
    final = running.wait_until_final(body["requestId"])

    # then robocall dialled slower (never stopped), and followed every call to its end
    assert 0.25 <= member.health_factor < 1.0
    for detail in final["details"]:
        assert detail["status"] == "completed", detail
        assert _steps(detail) == [("play", "sucess_ok")]
    assert _robo_channels(running) == []


def test_a_channel_silent_past_the_longest_call_is_asked_after_and_ended(
    start_service: ServiceStarter,
) -> None:
    # given calls that may go at most 0.4 s without a word from the switch, and a message
    # that plays ~2.5 s (no event comes while it plays)
    running = start_service(default=Callee(answer_after_ms=100, hangup_after_ms=60_000), lines=2)
    runner = running.service.dispatcher.runner
    runner.settings = replace(runner.settings, max_call_seconds=0.4)
    body = _request(["+6581000700"], text=LONG_TEXT)

    # when the call is answered and its message plays
    _post(running, body)
    final = running.wait_until_final(body["requestId"])

    # then robocall asked the switch, which still had the channel, and ended the call itself,
    # with a cause that says so; the message it cut reads as not played; no channel is left
    (detail,) = final["details"]
    assert (detail["status"], detail["hangupCause"]) == ("failed", "ROBOCALL_MAX_CALL_TIME")
    assert detail["answeredAt"] is not None
    assert _steps(detail) == [("play", "error_playback")]
    assert _robo_channels(running) == []

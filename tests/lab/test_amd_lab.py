"""Answering-machine detection on a real FreeSWITCH (marker `lab`): the lab's speaking callees.

The lab's dialplan makes ..10 a person ("Hello?", then presses 1 at ~4 s), ..11 a machine (a
~10 s greeting, then a 1 kHz beep), ..12 a machine (a ~5 s carrier greeting, no beep) and ..13 a
talkative person (~1.8 s, a pause, more words, then presses 1). They speak through mod_flite on
the callee leg. The whole service dials them over HTTP; in mode ``message`` the test records
each machine call in stereo itself (left: what the callee said, right: what robocall played),
so when the message began can be set against the end of the greeting and its beep, on one
timeline.
"""

from __future__ import annotations

import secrets
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import pytest

from robocall.amd.features import tone_frequency
from robocall.esl.client import EslClient
from tests.lab.conftest import LabSwitch
from tests.lab.test_calls_lab import LabService, lab_settings

pytestmark = pytest.mark.lab

HUMAN = "+6580000010"
MACHINE_BEEP = "+6580000011"
MACHINE_SILENT = "+6580000012"
TALKATIVE = "+6580000013"
CALLER = "+6582674904"
FRAME = 160  # 20 ms at 8 kHz
AUDIBLE_RMS = 300.0  # speech on the loopback lab is thousands; its silence is digital zero

# A gather the people answer (they press 1), then a play: the flow runs whole for a person.
GATHER_FLOW = {"steps": [{
    "name": "gather",
    "message": {"msg": "Hello, this is the clinic. Press 1 to confirm your appointment."},
    "maxRetries": 2,
    "branches": [{"digit": "1", "callFlow": {"steps": [
        {"name": "play", "message": {"msg": "Thank you, see you tomorrow."}}]}}],
}]}
PLAY_FLOW = {"steps": [
    {"name": "play", "message": {"msg": "Hello, this is the clinic calling about your "
                                         "appointment tomorrow at ten in the morning."}},
    {"name": "play", "message": {"msg": "Please call us back to confirm it."}},
]}
LEFT_MESSAGE = {"msg": "Sorry we missed you, {{name}}. Please call the clinic back."}


def _body(phones: list[str], flow: dict[str, Any], detection: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestId": f"lab-amd-{secrets.token_hex(3)}",
        "destinations": [
            {"phone": p, "caller": CALLER, "properties": {"name": "Sam"}} for p in phones
        ],
        "callFlow": flow,
        "machineDetection": detection,
    }


@pytest.fixture(scope="module")
def lab(lab_switch: LabSwitch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabService]:
    service = LabService(lab_settings(lab_switch, tmp_path_factory.mktemp("lab-amd")), 4)
    try:
        yield service
    finally:
        service.stop()


def test_people_are_human_and_their_flow_runs_whole(lab: LabService) -> None:
    run = lab.run([_body([HUMAN, TALKATIVE], GATHER_FLOW, {"mode": "message",
                                                          "message": LEFT_MESSAGE})])
    for number in (HUMAN, TALKATIVE):
        detail = run.calls[number]
        assert detail["answeredBy"] == "human", detail
        assert detail["status"] == "completed"
        steps = [(s["stepName"], s["info"]["status"], s["info"]["userPressedDigits"])
                 for s in detail["callFlowSteps"]]
        assert steps == [("gather", "sucess_ok", "1"), ("play", "sucess_ok", "")], steps
    print("human verdicts (ms):", {n: run.calls[n]["answeredByMs"] for n in (HUMAN, TALKATIVE)})


def test_machines_are_machines_and_hangup_ends_them(lab: LabService) -> None:
    run = lab.run([_body([MACHINE_BEEP, MACHINE_SILENT], PLAY_FLOW, {"mode": "hangup"})])
    for number in (MACHINE_BEEP, MACHINE_SILENT):
        detail = run.calls[number]
        assert detail["answeredBy"] == "machine", detail
        assert (detail["status"], detail["hangupCause"]) == ("failed", "MACHINE_DETECTED")
    print("machine verdicts (ms):",
          {n: run.calls[n]["answeredByMs"] for n in (MACHINE_BEEP, MACHINE_SILENT)})


@pytest.mark.parametrize(("number", "flow"), [
    pytest.param(MACHINE_BEEP, PLAY_FLOW, id="beep-during-play"),
    pytest.param(MACHINE_SILENT, PLAY_FLOW, id="no-beep-during-play"),
    pytest.param(MACHINE_BEEP, GATHER_FLOW, id="beep-during-gather"),
])
def test_the_message_begins_after_the_greeting(
    lab: LabService, lab_switch: LabSwitch, number: str, flow: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # given a machine in mode message (found while the flow plays, or while it gathers),
    # recorded in stereo from its answer by the test itself, the switch's playback and
    # recording events heard on a connection of the test's own
    body = _body([number], flow, {"mode": "message", "message": LEFT_MESSAGE})
    recording = tmp_path_factory.mktemp("lab-amd-stereo") / "call.wav"
    events: list[dict[str, str]] = []
    watch = EslClient(lab_switch.host, lab_switch.port, lab_switch.password,
                      events=("PLAYBACK_START", "RECORD_START"))
    watch.add_event_listener(lambda event: events.append(event.headers))
    watch.connect()
    try:
        watcher = gevent.spawn(_record_stereo, lab, body["requestId"], recording)
        run = lab.run([body])
        watcher.join(timeout=10)
    finally:
        watch.close()
    assert watcher.successful(), watcher.exception
    detail = run.calls[number]
    assert (detail["answeredBy"], detail["status"]) == ("machine", "completed"), detail
    callee, robocall = _stereo(recording)
    greeting_end = _greeting_end_ms(callee)
    message_start = _last_utterance_start_ms(robocall)
    # the switch's own clock: the recording began at RECORD_START, so the greeting (and its
    # beep) ended greeting_end ms later; the message's PLAYBACK_START is the call's last
    channel = detail["monitorData"][0]["uuid"]
    recorded = [e for e in events if e.get("Event-Name") == "RECORD_START"
                and e.get("Record-File-Path") == str(recording)]
    playbacks = [e for e in events if e.get("Event-Name") == "PLAYBACK_START"
                 and e.get("Unique-ID") == channel]
    assert recorded and playbacks, (len(recorded), len(playbacks))
    greeting_end_us = int(recorded[0]["Event-Date-Timestamp"]) + greeting_end * 1000
    message = playbacks[-1]
    playback_after_ms = (int(message["Event-Date-Timestamp"]) - greeting_end_us) / 1000
    print(f"{number}: greeting (and beep) ended at {greeting_end} ms of the recording; "
          f"robocall's message began at {message_start} ms; PLAYBACK_START of "
          f"{message.get('Playback-File-Path', '?').rsplit('/', 1)[-1]} came "
          f"{playback_after_ms:+.0f} ms after the greeting's end "
          f"({len(playbacks)} playbacks on the call)")
    assert playback_after_ms >= 0
    assert message_start >= greeting_end


def _record_stereo(lab: LabService, request_id: str, path: Path) -> None:
    """Start a stereo recording on the request's call as soon as its channel is known."""
    for _ in range(300):
        reply = lab.get(f"/v1/status/{request_id}")
        details = reply.json()["details"] if reply.status_code == 200 else []  # not posted yet
        legs = details[0]["monitorData"] if details else []
        if legs and details[0]["status"] == "onProgress":
            started = lab.service.switch.api(
                f"uuid_record {legs[0]['uuid']} start {path} 60 {{RECORD_STEREO=true}}"
            )
            assert started.startswith("+OK"), started
            return
        gevent.sleep(0.05)
    raise AssertionError("the call was never answered")


def _stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::2].astype(np.float64), samples[1::2].astype(np.float64)


def _frames(channel: np.ndarray) -> list[np.ndarray]:
    return [channel[i : i + FRAME] for i in range(0, len(channel) - FRAME + 1, FRAME)]


def _greeting_end_ms(callee: np.ndarray) -> int:
    """The end of the callee's last sound: the beep if there is one, else the greeting."""
    loud = [i for i, f in enumerate(_frames(callee)) if np.sqrt(np.mean(f * f)) > AUDIBLE_RMS]
    tones = [i for i, f in enumerate(_frames(callee)) if tone_frequency(f, 8000)]
    last = max(loud + tones)
    return (last + 1) * 20


def _last_utterance_start_ms(robocall: np.ndarray) -> int:
    """Where robocall's last stretch of speech began (gaps under 0.7 s inside it)."""
    loud = [i for i, f in enumerate(_frames(robocall)) if np.sqrt(np.mean(f * f)) > AUDIBLE_RMS]
    assert loud, "robocall played nothing"
    start = loud[-1]
    for index in reversed(loud[:-1]):
        if start - index > 35:
            break
        start = index
    return start * 20

"""Switch events read as the flow machine needs them, held to the recorded FreeSWITCH events;
flow actions written as the exact application arguments."""

from __future__ import annotations

import pytest

from robocall.calls.dialplan import DialPlan
from robocall.calls.translate import (
    DIGITS_VARIABLE,
    bridge_argument,
    bridge_outcome,
    collect_digits_argument,
    collected_digits,
    originate_failure,
    prompt_played,
    switch_time,
)
from robocall.esl.protocol import Event, parse_json_event
from robocall.flow.actions import CollectDigits
from robocall.flow.events import TransferStatus
from robocall.flow.model import Message, Transfer, TransferKind
from robocall.store.records import CallTicket
from tests.support import transcripts


def recorded(name: str, event_name: str, application: str | None = None) -> list[Event]:
    """The json events of one name (and application) in a recorded session, in order."""
    found = []
    for frame in transcripts.load(name).frames():
        if frame.headers.get("Content-Type") != "text/event-json":
            continue
        event = parse_json_event(frame.body)
        if event.name == event_name and (
            application is None or event.get("Application") == application
        ):
            found.append(event)
    return found


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("esl-transfer-answered.txt", TransferStatus.ANSWERED),
        ("esl-transfer-busy.txt", TransferStatus.BUSY),
        ("esl-transfer-noanswer.txt", TransferStatus.NO_ANSWER),
    ],
)
def test_a_recorded_bridge_outcome(transcript, expected):
    completion = recorded(transcript, "CHANNEL_EXECUTE_COMPLETE", "bridge")[0]
    assert bridge_outcome(completion) is expected


def test_a_bridge_without_a_disposition_failed():
    assert (
        bridge_outcome(Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE"})) is TransferStatus.FAILED
    )


def test_playback_to_the_end_and_playback_cut_by_the_callee():
    played = recorded("esl-transcript.txt", "CHANNEL_EXECUTE_COMPLETE", "playback")[0]
    cut = recorded("esl-callee-hangup-during-playback.txt", "CHANNEL_EXECUTE_COMPLETE", "playback")
    assert prompt_played(played) is True
    assert prompt_played(cut[0]) is False


def _as_robocalls(event: Event) -> Event:
    """The recorded gather used pagd_digits as its variable; robocall names its own."""
    headers = dict(event.headers)
    for suffix in ("", "_invalid"):
        if f"variable_pagd_digits{suffix}" in headers:
            headers[f"variable_{DIGITS_VARIABLE}{suffix}"] = headers.pop(
                f"variable_pagd_digits{suffix}"
            )
    return Event(headers, event.body)


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("esl-transcript.txt", ["123"]),
        # every try invalid: read_result=success, yet nothing collected
        ("esl-gather-invalid.txt", ["", ""]),
        ("esl-gather-timeout.txt", [""]),
        # 3 then 1: the valid 1, whatever the stale invalid variable says
        ("esl-gather-invalid-then-valid.txt", ["1"]),
    ],
)
def test_recorded_gathers_are_judged_by_their_variable(transcript, expected):
    completions = recorded(transcript, "CHANNEL_EXECUTE_COMPLETE", "play_and_get_digits")
    assert [collected_digits(_as_robocalls(c)) for c in completions] == expected


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ("+OK 6f331c8f-513b-430a-a07e-73022827ff5b\n", None),
        ("-ERR USER_BUSY\n", "USER_BUSY"),
        ("-ERR NO_ANSWER\n", "NO_ANSWER"),
        ("-ERR NORMAL_TEMPORARY_FAILURE\n", "NORMAL_TEMPORARY_FAILURE"),
        ("-ERR", "FAILURE"),
        ("", "FAILURE"),
    ],
)
def test_originate_results(body, cause):
    assert originate_failure(body) == cause


def test_recorded_originate_failures_name_their_cause():
    jobs = recorded("esl-transcript-originate-failures.txt", "BACKGROUND_JOB")
    causes = [originate_failure(job.body) for job in jobs]
    assert causes == ["USER_BUSY", "NO_ANSWER", "NORMAL_TEMPORARY_FAILURE"]


def test_switch_times_in_seconds_and_unset_ones():
    answer = recorded("esl-transcript.txt", "CHANNEL_ANSWER")[0]
    assert switch_time(answer, "Caller-Channel-Answered-Time") == pytest.approx(1795722984.043362)
    assert switch_time(answer, "Caller-Channel-Hangup-Time") is None  # "0" while up
    assert switch_time(answer, "No-Such-Header") is None


def test_one_try_of_a_gather_as_play_and_get_digits_argument():
    action = CollectDigits(
        step_id="2",
        message=Message("press 1"),
        min_digits=1,
        max_digits=1,
        timeout_ms=5000,
        digit_timeout_ms=3000,
        terminators="#",
        attempt=1,
        max_attempts=3,
    )
    assert collect_digits_argument(action, "/var/tts/ab/abc.wav") == (
        "1 1 1 5000 # '/var/tts/ab/abc.wav' 'silence_stream://250' robocall_digits [0-9*#]+ 3000"
    )
    no_terminator = CollectDigits(**{**action.__dict__, "terminators": ""})
    assert " none " in collect_digits_argument(no_terminator, "/p.wav")


TICKET = CallTicket(
    call_id=42,
    request_id="request 10",
    organization_id="org_1",
    phone="+6580000001",
    caller="+6582674904",
    properties={},
    channel_uuid="u-1",
    line_variable=("accountcode", "org_1"),
    record=False,
)


def test_a_transfer_to_an_extension_takes_no_line():
    argument = bridge_argument(TICKET, Transfer(TransferKind.EXTENSION, "1000"), DialPlan(), 20)
    assert argument == (
        "{origination_caller_id_number=+6582674904,originate_timeout=20,robocall_call_id=42,"
        "robocall_request_id=request%2010}user/1000@127.0.0.1"
    )


def test_a_transfer_to_a_number_takes_a_second_line():
    argument = bridge_argument(TICKET, Transfer(TransferKind.NUMBER, "+6591991191"), DialPlan(), 20)
    assert argument.endswith(",accountcode=org_1}sofia/gateway/robocall/+6591991191")

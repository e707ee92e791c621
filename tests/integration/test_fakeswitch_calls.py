"""Calls through FakeSwitch with scripted callees, driven from a client over real TCP."""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from robocall.testing import Callee, CalleeBook, FakeSwitch, Press
from tests.support.eslwire import EslWire

EVENTS = ("CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_ANSWER CHANNEL_PARK CHANNEL_BRIDGE "
          "CHANNEL_UNBRIDGE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY DTMF "
          "CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE BACKGROUND_JOB PLAYBACK_START "
          "PLAYBACK_STOP RECORD_START RECORD_STOP")
PAGD = "1 1 2 3000 # silence_stream://200 silence_stream://100 pagd_digits ^[12]$ 2000"
BOOK = {
    # Keys come a scripted second after the answer: after the client's sendmsg has arrived.
    "+6580000001": Callee(presses=(Press(1000, "1"),)),
    "+6580000002": Callee(presses=(Press(1000, "3"), Press(2500, "1"))),
    "+6580000003": Callee(),
    "+6580000004": Callee(outcome="busy", ring=False),
    "+6580000005": Callee(outcome="no_answer"),
    "+6580000006": Callee(hangup_after_ms=1000),
    "+6580000008": Callee(presses=(Press(50, "1"),)),
    "+6580000009": Callee(outcome="reject", ring=False),
    "+6580000010": Callee(outcome="network_failure", ring=False),
    "1000": Callee(answer_after_ms=100, hangup_after_ms=500),
    "1001": Callee(outcome="busy", ring=False),
    "1002": Callee(outcome="no_answer"),
}


@pytest.fixture
def fake() -> Iterator[FakeSwitch]:
    switch = FakeSwitch(CalleeBook(dict(BOOK)), time_scale=0.05).start()
    yield switch
    switch.stop()


@pytest.fixture
def client(fake: FakeSwitch) -> Iterator[EslWire]:
    wire = EslWire(fake.address)
    wire.login(events=EVENTS)
    yield wire
    wire.close()


def originate(client: EslWire, leg: str, number: str, extra: str = "") -> None:
    client.command(f"bgapi originate {{origination_uuid={leg},accountcode=org-1,"
                   f"robocall_call_id=c-{leg},originate_timeout=2{extra}}}"
                   f"sofia/gateway/robocall/{number} &park()\nJob-UUID: job-{leg}")


def execute(client: EslWire, leg: str, app: str, argument: str) -> dict[str, str]:
    """Run an app on a parked leg and return its CHANNEL_EXECUTE_COMPLETE."""
    client.command(f"sendmsg {leg}\ncall-command: execute\nexecute-app-name: {app}\n"
                   f"execute-app-arg: {argument}\nEvent-UUID: ev-{leg}-{app}")
    return client.wait_event("CHANNEL_EXECUTE_COMPLETE", leg,
                             Application_UUID=f"ev-{leg}-{app}")


def answered(client: EslWire, leg: str, number: str) -> None:
    originate(client, leg, number)
    client.wait_event("CHANNEL_PARK", leg)


def seen(client: EslWire, name: str, leg: str | None = None) -> dict[str, str]:
    """The first event of this name (for this leg) received so far."""
    return next(e for e in client.events()
                if e["Event-Name"] == name and (leg is None or e.get("Unique-ID") == leg))


def names_of(client: EslWire, leg: str) -> list[str]:
    return [e["Event-Name"] for e in client.events()
            if e.get("Unique-ID") == leg or e.get("Job-UUID") == f"job-{leg}"]


# --- originate ----------------------------------------------------------------------------


def test_answered_originate_parks_with_the_originate_variables(client: EslWire) -> None:
    # When a call to an answering callee is originated
    originate(client, "a1", "+6580000003")
    job = client.wait_event("BACKGROUND_JOB", Job_UUID="job-a1")
    client.wait_event("CHANNEL_PARK", "a1")

    # Then it goes CREATE, PROGRESS, ANSWER, job +OK, EXECUTE(park), PARK and keeps the variables
    assert job["_body"] == "+OK a1\n"
    assert names_of(client, "a1") == ["CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_ANSWER",
                                      "BACKGROUND_JOB", "CHANNEL_EXECUTE", "CHANNEL_PARK"]
    create = client.events()[0]
    assert create["variable_robocall_call_id"] == "c-a1"
    assert create["variable_accountcode"] == "org-1"
    assert create["Caller-Destination-Number"] == "+6580000003"


@pytest.mark.parametrize(("number", "cause"), [
    ("+6580000004", "USER_BUSY"), ("+6580000009", "CALL_REJECTED"),
    ("+6580000010", "NORMAL_TEMPORARY_FAILURE")])
def test_refused_originate_hangs_up_before_the_job_reports(client: EslWire, number: str,
                                                          cause: str) -> None:
    # When the callee refuses the call
    originate(client, "r1", number)
    job = client.wait_event("BACKGROUND_JOB", Job_UUID="job-r1")
    client.wait_event("CHANNEL_DESTROY", "r1")

    # Then the leg hangs up with the cause first and the job reports -ERR <cause> after it
    assert job["_body"] == f"-ERR {cause}\n"
    assert names_of(client, "r1") == ["CHANNEL_CREATE", "CHANNEL_HANGUP",
                                      "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB",
                                      "CHANNEL_DESTROY"]
    complete = client.events()[2]
    assert complete["variable_sip_hangup_disposition"] == "recv_refuse"


def test_no_answer_reports_before_hangup_complete(client: EslWire) -> None:
    # When the callee rings until originate_timeout
    originate(client, "n1", "+6580000005")
    client.wait_event("CHANNEL_DESTROY", "n1")

    # Then the job's -ERR NO_ANSWER comes before HANGUP_COMPLETE (send_cancel)
    assert names_of(client, "n1") == ["CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_HANGUP",
                                      "BACKGROUND_JOB", "CHANNEL_HANGUP_COMPLETE",
                                      "CHANNEL_DESTROY"]
    assert seen(client, "BACKGROUND_JOB")["_body"] == "-ERR NO_ANSWER\n"


def test_unknown_numbers_get_the_configured_default(fake: FakeSwitch, client: EslWire) -> None:
    # Given a default callee that does not exist (SIP 404)
    fake.callees.default = Callee(outcome="unallocated", ring=False)

    # When an unscripted number is dialled
    originate(client, "u1", "+6599999999")
    job = client.wait_event("BACKGROUND_JOB", Job_UUID="job-u1")

    # Then it fails as an unallocated number
    assert job["_body"] == "-ERR UNALLOCATED_NUMBER\n"


def test_sessions_per_second_budget_throttles() -> None:
    # Given a switch allowing 2 new sessions per (scripted) second, slowed so none ends
    with FakeSwitch(CalleeBook(), time_scale=100, sessions_per_second=2) as fake:
        wire = EslWire(fake.address)
        wire.login(events="BACKGROUND_JOB")

        # When three calls are originated at once
        for leg in ("t1", "t2", "t3"):
            originate(wire, leg, "+6580000003")
        job = wire.wait_event("BACKGROUND_JOB")

        # Then the third is refused and the first two exist
        assert job["Job-UUID"] == "job-t3"
        assert job["_body"] == "-ERR DESTINATION_OUT_OF_ORDER\n"
        assert [c.uuid for c in fake.channels()] == ["t1", "t2"]
        wire.close()


def test_max_sessions_limit() -> None:
    # Given a switch with room for one session
    with FakeSwitch(CalleeBook(), time_scale=100, max_sessions=1) as fake:
        wire = EslWire(fake.address)
        wire.login(events="BACKGROUND_JOB")

        # When two calls are originated
        originate(wire, "m1", "+6580000003")
        originate(wire, "m2", "+6580000003")

        # Then the second is refused
        assert wire.wait_event("BACKGROUND_JOB")["_body"] == "-ERR DESTINATION_OUT_OF_ORDER\n"
        wire.close()


def test_sendmsg_before_park_is_aborted() -> None:
    # Given a slowed switch, so the gap between answer and park() is wide
    with FakeSwitch(CalleeBook(), time_scale=20) as fake:
        wire = EslWire(fake.address)
        wire.login(events=EVENTS)
        originate(wire, "e1", "+6580000003")
        wire.wait_event("CHANNEL_ANSWER", "e1")

        # When play_and_get_digits is sent on CHANNEL_ANSWER, before CHANNEL_PARK
        complete = execute(wire, "e1", "play_and_get_digits", PAGD)

        # Then it returns at once with nothing collected
        # (docs/design.md, "From the scripted-callee lab", 1)
        assert "variable_read_result" not in complete
        assert "PLAYBACK_START" not in names_of(wire, "e1")
        wire.close()


# --- applications -------------------------------------------------------------------------


def test_playback_of_a_wav_file_lasts_its_length(client: EslWire, tmp_path: Path) -> None:
    # Given a 0.5 s WAV file and an answered call
    path = tmp_path / "hello.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 4000)
    answered(client, "w1", "+6580000003")

    # When it is played
    complete = execute(client, "w1", "playback", str(path))

    # Then PLAYBACK_START/STOP frame it and the played length is the file's
    assert complete["Application-Response"] == "FILE PLAYED"
    assert complete["variable_playback_ms"] == "500"
    stop = seen(client, "PLAYBACK_STOP", "w1")
    assert stop["Playback-File-Path"] == str(path)


def test_play_and_get_digits_collects_a_valid_digit(client: EslWire) -> None:
    # Given a callee pressing 1 while the prompt plays
    answered(client, "g1", "+6580000001")

    # When digits are gathered
    complete = execute(client, "g1", "play_and_get_digits", PAGD)

    # Then the digit is in pagd_digits with read_result=success
    assert complete["variable_pagd_digits"] == "1"
    assert complete["variable_read_result"] == "success"


def test_invalid_then_valid_keeps_the_stale_invalid_digit(client: EslWire) -> None:
    # Given a callee pressing 3 (invalid) then 1
    answered(client, "g2", "+6580000002")

    # When digits are gathered with two tries
    complete = execute(client, "g2", "play_and_get_digits", PAGD)

    # Then 1 is taken and the invalid 3 stays in pagd_digits_invalid (esl-gather-*.txt)
    assert complete["variable_pagd_digits"] == "1"
    assert complete["variable_pagd_digits_invalid"] == "3"
    assert complete["variable_read_result"] == "success"


def test_no_input_is_a_failure_without_digits(client: EslWire) -> None:
    # Given a silent callee
    answered(client, "g3", "+6580000003")

    # When digits are gathered
    complete = execute(client, "g3", "play_and_get_digits", PAGD)

    # Then read_result=failure, no pagd_digits, and getvar of the invalid one is _undef_
    assert complete["variable_read_result"] == "failure"
    assert "variable_pagd_digits" not in complete
    assert client.command("api uuid_getvar g3 pagd_digits_invalid").body == b"_undef_"


def test_digits_pressed_while_parked_are_consumed(client: EslWire) -> None:
    # Given a callee that presses 1 right after answering, while the leg only parks
    answered(client, "g4", "+6580000008")
    client.wait_event("DTMF", "g4")

    # When digits are gathered afterwards
    complete = execute(client, "g4", "play_and_get_digits", PAGD)

    # Then park swallowed the digit: nothing collected
    assert complete["variable_read_result"] == "failure"
    assert "variable_pagd_digits" not in complete


def test_callee_hangup_during_playback(client: EslWire) -> None:
    # Given a callee that hangs up 1 s after answering
    answered(client, "h1", "+6580000006")

    # When a 30 s tone plays
    complete = execute(client, "h1", "playback", "tone_stream://%(1000,0,440);loops=30")

    # Then the playback errors and the hangup is the callee's
    assert complete["Application-Response"] == "PLAYBACK ERROR"
    done = client.wait_event("CHANNEL_HANGUP_COMPLETE", "h1")
    assert done["Hangup-Cause"] == "NORMAL_CLEARING"
    assert done["variable_sip_hangup_disposition"] == "recv_bye"


def test_sendmsg_hangup_with_cause(client: EslWire) -> None:
    # Given an answered call
    answered(client, "k1", "+6580000003")

    # When the controller hangs it up with a cause
    client.command("sendmsg k1\ncall-command: hangup\nhangup-cause: CALL_REJECTED")
    done = client.wait_event("CHANNEL_HANGUP_COMPLETE", "k1")

    # Then the cause is kept and FreeSWITCH sent the BYE
    assert done["Hangup-Cause"] == "CALL_REJECTED"
    assert done["variable_sip_hangup_disposition"] == "send_bye"


def test_record_session_writes_a_wav_of_the_call(client: EslWire, tmp_path: Path) -> None:
    # Given an answered call recording to a file
    path = tmp_path / "rec" / "call.wav"
    answered(client, "rec1", "+6580000003")
    execute(client, "rec1", "record_session", str(path))
    execute(client, "rec1", "playback", "silence_stream://1000")

    # When the call is hung up
    client.command("sendmsg rec1\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING")
    stop = client.wait_event("RECORD_STOP", "rec1")

    # Then a mono 8 kHz 16-bit WAV exists whose length is the reported record_ms
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 8000, 2)
        assert wav.getnframes() == int(stop["variable_record_samples"])
        assert int(stop["variable_record_ms"]) == wav.getnframes() // 8
    assert int(stop["variable_record_ms"]) >= 1000
    assert stop["Record-File-Path"] == str(path)


# --- bridge -------------------------------------------------------------------------------


def test_bridge_to_an_extension_that_answers_returns_a_to_park(client: EslWire) -> None:
    # Given an answered call and extension 1000 that answers and hangs up after 0.5 s
    answered(client, "x1", "+6580000003")

    # When it is bridged to user/1000@domain
    complete = execute(client, "x1", "bridge", "{origination_caller_id_number=6582674904}"
                                              "user/1000@pbx.example")

    # Then the bridge succeeded, the B leg's end unbridged A, and A is still up (back in park)
    assert complete["variable_originate_disposition"] == "SUCCESS"
    assert complete["variable_DIALSTATUS"] == "SUCCESS"
    assert complete["variable_last_bridge_hangup_cause"] == "NORMAL_CLEARING"
    bridge = seen(client, "CHANNEL_BRIDGE", "x1")
    assert bridge["Other-Leg-Destination-Number"] == "1000"
    assert "CHANNEL_UNBRIDGE" in names_of(client, "x1")
    assert client.command("api uuid_exists x1").body == b"true"


def test_bridge_to_busy_hangs_a_up_by_default(client: EslWire) -> None:
    # Given an answered call
    answered(client, "x2", "+6580000003")

    # When it is bridged to a busy extension
    complete = execute(client, "x2", "bridge", "user/1001@pbx.example")

    # Then FreeSWITCH hangs the A leg up with USER_BUSY
    assert complete["variable_originate_disposition"] == "USER_BUSY"
    assert complete["variable_DIALSTATUS"] == "BUSY"
    assert complete["Answer-State"] == "hangup"
    assert client.wait_event("CHANNEL_HANGUP_COMPLETE", "x2")["Hangup-Cause"] == "USER_BUSY"


def test_bridge_to_busy_with_continue_on_fail_keeps_a(client: EslWire) -> None:
    # Given an answered call with continue_on_fail=true
    answered(client, "x3", "+6580000003")
    execute(client, "x3", "set", "continue_on_fail=true")

    # When it is bridged to a busy extension
    complete = execute(client, "x3", "bridge", "user/1001@pbx.example")

    # Then the outcome is busy and A stays up
    assert complete["variable_DIALSTATUS"] == "BUSY"
    assert complete["Answer-State"] == "answered"
    assert client.command("api uuid_exists x3").body == b"true"


def test_bridge_no_answer_honours_the_dial_string_timeout(client: EslWire) -> None:
    # Given an answered call
    answered(client, "x4", "+6580000003")

    # When it is bridged to an extension that never answers, with a 1 s timeout
    complete = execute(client, "x4", "bridge", "{originate_timeout=1}user/1002@pbx.example")

    # Then the outcome is no answer and A stays up
    assert complete["variable_originate_disposition"] == "NO_ANSWER"
    assert complete["variable_DIALSTATUS"] == "NOANSWER"
    assert client.command("api uuid_exists x4").body == b"true"


# --- api ------------------------------------------------------------------------------------


def test_show_channels_accountcode_fills_once_the_leg_runs_an_app(client: EslWire) -> None:
    # Given nothing up: the empty answer has its own spelling
    empty = client.command("api show channels as json").body

    # When a call rings (no app yet) and then one is parked
    originate(client, "l1", "+6580000005")
    client.wait_event("CHANNEL_PROGRESS", "l1")
    ringing = json.loads(client.command("api show channels as json").body)
    answered(client, "l2", "+6580000003")
    both = json.loads(client.command("api show channels as json").body)

    # Then the ringing row's accountcode is empty and the parked one's is filled
    assert empty == b'{"row_count": 0}\n'
    assert ringing["rows"][0]["accountcode"] == ""
    assert ringing["rows"][0]["callstate"] == "RINGING"
    rows = {r["uuid"]: r for r in both["rows"]}
    assert rows["l2"]["accountcode"] == "org-1"
    assert rows["l2"]["application"] == "park"
    like = json.loads(client.command("api show channels like org-1 as json").body)
    assert [r["uuid"] for r in like["rows"]] == ["l2"]


def test_uuid_kill_and_getvar(client: EslWire) -> None:
    # Given an answered call
    answered(client, "v1", "+6580000003")

    # When its variable is read and then it is killed
    value = client.command("api uuid_getvar v1 robocall_call_id").body
    killed = client.command("api uuid_kill v1").body
    done = client.wait_event("CHANNEL_HANGUP_COMPLETE", "v1")

    # Then both answer as FreeSWITCH does and the channel is gone
    assert value == b"c-v1"
    assert killed == b"+OK\n"
    assert done["Hangup-Cause"] == "NORMAL_CLEARING"
    assert client.command("api uuid_kill v1").body == b"-ERR No such channel!\n"


def test_external_calls_appear_as_channels_and_events(fake: FakeSwitch,
                                                      client: EslWire) -> None:
    # When a call robocall did not make starts on the organization's line
    leg = fake.start_external_call(variables={"accountcode": "org-1"}, number="+6591234567")
    create = client.wait_event("CHANNEL_CREATE", leg)
    client.wait_event("CHANNEL_ANSWER", leg)
    rows = json.loads(client.command("api show channels as json").body)["rows"]

    # And when it ends
    fake.end_external_call(leg)
    client.wait_event("CHANNEL_DESTROY", leg)

    # Then it was counted as the organization's line while it lasted, and is gone after
    assert create["variable_accountcode"] == "org-1"
    assert [(r["uuid"], r["accountcode"]) for r in rows] == [(leg, "org-1")]
    assert names_of(client, leg) == ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP",
                                     "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"]
    assert fake.channels() == []


def test_uuid_kill_while_ringing_ends_the_originate(client: EslWire) -> None:
    # Given a call that is still ringing
    originate(client, "z1", "+6580000005")
    client.wait_event("CHANNEL_PROGRESS", "z1")

    # When it is killed
    client.command("api uuid_kill z1 ORIGINATOR_CANCEL")
    client.wait_event("CHANNEL_DESTROY", "z1")

    # Then the originate fails with that cause and the leg never parked
    assert seen(client, "BACKGROUND_JOB")["_body"] == "-ERR ORIGINATOR_CANCEL\n"
    assert "CHANNEL_PARK" not in names_of(client, "z1")
    assert seen(client, "CHANNEL_HANGUP_COMPLETE", "z1")["variable_sip_hangup_disposition"] \
        == "send_cancel"

"""A read-leg recording the originate asks the switch to start at the answer (``api_on_answer``):
the real switch's session (tests/transcripts/esl-amd-record-on-answer.txt) and FakeSwitch's."""

from __future__ import annotations

import uuid
import wave
from pathlib import Path

import gevent
import numpy as np

from robocall.esl import commands
from robocall.testing import Callee, CalleeBook, FakeSwitch
from robocall.testing.voice import Segment, render_script
from tests.support import transcripts
from tests.support.eslwire import EslWire, WireFrame

TIME_SCALE = 0.1
DIAL = "sofia/internal/+6580000010@127.0.0.1:5090"
HELLO_AT_MS = 640  # the lab's ..10 said "Hello?" 640 ms into the recording
PERSON = Callee(ring=False, answer_after_ms=20, audio=(
    Segment("silence", ms=HELLO_AT_MS), Segment("say", text="Hello?", voice="kal"),
    Segment("silence", ms=5000)))
EVENTS = "CHANNEL_ANSWER CHANNEL_EXECUTE BACKGROUND_JOB RECORD_START RECORD_STOP CHANNEL_HANGUP"


def _channel_events(record: transcripts.Transcript) -> list[dict[str, str]]:
    events = [WireFrame(f.raw).event for f in record.frames()]
    return [e for e in events if e is not None]


def test_the_real_switch_starts_the_recording_in_the_answer() -> None:
    # Given the lab switch's session of an originate carrying the recording as api_on_answer
    record = transcripts.load("esl-amd-record-on-answer.txt")
    events = _channel_events(record)
    names = [e["Event-Name"] for e in events]

    # Then RECORD_START came right after CHANNEL_ANSWER, before the originate's job and park
    answer = names.index("CHANNEL_ANSWER")
    assert names[answer + 1] == "RECORD_START"
    assert names.index("BACKGROUND_JOB") > answer + 1
    start = events[answer + 1]
    # within the same tick of the switch's clock (it ticks in 20 ms), the recording's own
    # variables on it, and the variable's commas unescaped on the channel
    stamps = int(start["Event-Date-Timestamp"]) - int(events[answer]["Event-Date-Timestamp"])
    assert 0 <= stamps <= 20_000
    assert start["Recording-Variable-RECORD_READ_ONLY"] == "true"
    assert start["variable_api_on_answer"].endswith(
        "{RECORD_READ_ONLY=true,enable_file_write_buffering=false}")
    # and the stopped recording holds the call from its answer: 2020 ms for the 2.02 s (on the
    # recorder's clock) from CHANNEL_ANSWER to the stop's reply
    stop = next(e for e in events if e["Event-Name"] == "RECORD_STOP")
    frames = record.frames()
    answered_t = next(f.t for f in frames if b'"Event-Name":"CHANNEL_ANSWER"' in f.raw)
    stopped_t = next(f.t for f in frames if f.raw.startswith(b"Content-Type: api/response")
                     and f.body == b"+OK Success\n")
    assert abs(int(stop["variable_record_ms"]) - 1000 * (stopped_t - answered_t)) <= 40


def _speech_starts_ms(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return _first_speech_ms(wav.readframes(wav.getnframes()))


def _first_speech_ms(pcm: bytes) -> int:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    for i in range(0, len(samples) - 160, 160):
        if np.sqrt(np.mean(samples[i:i + 160] ** 2)) > 300:
            return i // 8
    raise AssertionError("no speech")


def test_fakeswitch_starts_it_in_the_answer_and_records_from_there(tmp_path: Path) -> None:
    # Given a FakeSwitch person who says "Hello?" 640 ms after picking up, and a busy client:
    # robocall reads nothing for 1.5 scripted seconds after it sends the originate
    fake = FakeSwitch(CalleeBook({DIAL: PERSON}), time_scale=TIME_SCALE).start()
    client = EslWire(fake.address, timeout=10)
    channel = str(uuid.uuid4())
    path = tmp_path / "amd" / f"c-1-{channel}.wav"
    try:
        client.login(events=EVENTS)
        originate = commands.originate(
            uuid=channel, dial_string=DIAL, caller_id_number="6582674904", timeout_seconds=15,
            call_id="c-1", request_id="r-1",
            api_on_answer=commands.uuid_record_read_leg(channel, str(path), 65))
        client.command(commands.bgapi(originate, str(uuid.uuid4())))
        gevent.sleep(fake.switch.seconds(1500))

        # When the client catches up, then stops the recording 2 s into the call
        answer = client.wait_event("CHANNEL_ANSWER", channel)
        started = client.wait_event("RECORD_START", channel)
        gevent.sleep(fake.switch.seconds(500))
        reply = client.command(commands.api(commands.uuid_record_stop(channel, str(path))))
        stopped = client.wait_event("RECORD_STOP", channel)
    finally:
        client.close()
        fake.stop()

    # Then the recording began in the answer: RECORD_START right after CHANNEL_ANSWER, the
    # switch's own commas unescaped, and the file holds the "Hello?" where the callee said it
    names = [e["Event-Name"] for e in client.events() if e.get("Unique-ID") == channel]
    assert names[names.index("CHANNEL_ANSWER") + 1] == "RECORD_START"
    assert answer["variable_api_on_answer"] == (
        f"uuid_record {channel} start {path} 65 "
        "{RECORD_READ_ONLY=true,enable_file_write_buffering=false}")
    assert started["Recording-Variable-enable_file_write_buffering"] == "false"
    assert reply.body == b"+OK Success\n"
    assert stopped["Record-Completion-Cause"] == "success-maxtime"
    # (the script's own first speech, on the callee's side, as rendered)
    assert _speech_starts_ms(path) == _first_speech_ms(render_script(PERSON.audio))
    with wave.open(str(path), "rb") as wav:
        assert int(stopped["variable_record_samples"]) == wav.getnframes() > 8000


def test_fakeswitch_records_a_path_once(tmp_path: Path) -> None:
    # Given an answered call whose recording the switch started at the answer
    fake = FakeSwitch(CalleeBook({DIAL: PERSON}), time_scale=TIME_SCALE).start()
    client = EslWire(fake.address, timeout=10)
    channel = str(uuid.uuid4())
    path = tmp_path / f"{channel}.wav"
    record = commands.uuid_record_read_leg(channel, str(path), 65)
    try:
        client.login(events=EVENTS)
        originate = commands.originate(
            uuid=channel, dial_string=DIAL, caller_id_number="6582674904", timeout_seconds=15,
            call_id="c-1", request_id="r-1", api_on_answer=record)
        client.command(commands.bgapi(originate, str(uuid.uuid4())))
        client.wait_event("RECORD_START", channel)

        # When the same recording is asked for again
        again = client.command(commands.api(record))
        client.command(commands.api(commands.uuid_kill(channel)))
        client.wait_event("RECORD_STOP", channel)
    finally:
        client.close()
        fake.stop()

    # Then it is +OK, as FreeSWITCH answers ("Already recording"), and nothing starts twice
    assert again.body == b"+OK Success\n"
    assert [e["Event-Name"] for e in client.events()].count("RECORD_START") == 1

"""What FakeSwitch callees say: audio scripts, and the read-leg recording written as it grows."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import gevent
import pytest

from robocall.amd.follow import GrowingWav
from robocall.errors import ConfigError
from robocall.testing import Callee, CalleeBook
from robocall.testing.voice import (
    ReadLegRecording,
    Segment,
    parse_script,
    render_script,
    segment_spans,
    start_read_leg_recording,
)


def test_an_audio_script_reads_from_the_callee_file() -> None:
    book = CalleeBook.from_dict({"callees": {"+6580000011": {"audio": [
        {"silence_ms": 500}, {"say": "Hi there.", "voice": "rms", "rate": 6},
        {"tone_hz": 1000, "ms": 400}]}}})
    assert book.lookup("+6580000011").audio == (
        Segment("silence", ms=500), Segment("say", text="Hi there.", voice="rms", rate=6),
        Segment("tone", ms=400, hz=1000.0),
    )
    with pytest.raises(ConfigError, match="unknown field"):
        parse_script([{"silence_ms": 5, "loud": True}])
    with pytest.raises(ConfigError, match="give silence_ms"):
        parse_script([{"rate": 5}])


def test_segments_render_to_their_lengths() -> None:
    script = (Segment("silence", ms=300), Segment("tone", ms=200, hz=800.0))
    assert len(render_script(script)) == (300 + 200) * 8 * 2
    assert [(s.kind, a, b) for s, a, b in segment_spans(script)] == [
        ("silence", 0, 300), ("tone", 300, 500)]


class _Switch:
    """Just what record_read_leg uses of the fake switch, on a scale of 0.01."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[tuple[str, str]]]] = []
        self.greenlets: list[gevent.Greenlet] = []

    def spawn(self, function: Any, *args: Any) -> gevent.Greenlet:
        self.greenlets.append(gevent.spawn(function, *args))
        return self.greenlets[-1]

    @staticmethod
    def monotonic() -> float:
        return gevent.get_hub().loop.now()

    def seconds(self, ms: float) -> float:
        return ms / 1000 * 0.01

    def scripted_ms(self, seconds: float) -> float:
        return seconds * 1000 / 0.01


class _Channel:
    def __init__(self, callee: Callee) -> None:
        self.switch = _Switch()
        self.callee = callee
        self.up = True
        self.answered_mono = self.switch.monotonic()
        self.events: list[str] = []
        self.read_recordings: dict[str, ReadLegRecording] = {}
        self.variables: dict[str, str] = {}

    def emit(self, name: str, headers: list[tuple[str, str]]) -> None:
        self.events.append(name)


def test_the_recording_grows_with_a_header_whose_sizes_wait_for_the_close(tmp_path: Path) -> None:
    # given a callee with 1 s of tone, recorded for at most 3 s
    channel = _Channel(Callee(audio=(Segment("tone", ms=1000, hz=1000.0),)))
    path = tmp_path / "amd.wav"
    start_read_leg_recording(channel, str(path), 3000, {"RECORD_READ_ONLY": "true"})
    writer = channel.switch.greenlets[0]
    # while it runs, the header's sizes are 0 and a follower reads the PCM after it
    follower = GrowingWav(path)
    got = b""
    while not writer.dead and len(got) < 8000:
        got += follower.read()
        gevent.sleep(0.001)
    header = path.read_bytes()[:44]
    if not writer.dead:
        assert struct.unpack("<I", header[40:44]) == (0,)
    writer.join(timeout=10)
    # at the limit it closes: the sizes are set, the audio is the tone then silence
    data = path.read_bytes()
    assert struct.unpack("<I", data[40:44]) == (len(data) - 44,) == (3000 * 16,)
    assert channel.events == ["RECORD_START", "RECORD_STOP"]
    assert channel.variables["record_samples"] == str(3000 * 8)
    assert not channel.read_recordings  # over: the path may be recorded again
    # (from where the script was when the recording began: a moment after the answer)
    heard = render_script(channel.callee.audio) + b"\x00" * len(data)
    # where the script was when it began (load may delay the writer): what is left of the tone
    script = render_script(channel.callee.audio)
    near = len(script) - len(data[44:].rstrip(b"\x00"))
    starts = [k for k in range(max(near - 64, 0), near + 64, 2)
              if heard[k : k + 3000 * 16] == data[44:]]
    assert starts, "the recording is not the rest of the callee's script, then silence"
    assert follower.sample_rate == 8000

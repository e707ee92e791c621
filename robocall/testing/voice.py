"""What a scripted callee says: its audio script, and the read-leg recording the fake writes.

A callee's ``audio`` is a list of segments from the answer on — silence, speech (rendered by
flite or espeak-ng, as the lab's callees speak through mod_flite), a tone, or a WAV file — so
answering-machine detection hears real audio in CI. ``uuid_record <uuid> start <path> <limit>
{RECORD_READ_ONLY=true}`` makes the fake write that audio into ``path`` as FreeSWITCH 1.11.1
does: a 44-byte WAV header whose sizes are filled in only when the recording closes, then the
PCM, 100 ms at a time, in real time on the switch's time scale. A callee with no audio script
is silent. See docs/fakeswitch-callees.md.
"""

from __future__ import annotations

import functools
import struct
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gevent.event import Event as Flag

from robocall.errors import ConfigError

if TYPE_CHECKING:
    from robocall.testing.channels import Channel

SAMPLE_RATE = 8000
CHUNK_MS = 100  # how much audio each write adds, as a media bug's writes come in bursts
SEGMENT_KINDS = ("silence", "say", "tone", "file")


@dataclass(frozen=True)
class Segment:
    """One piece of a callee's audio: ``silence`` (ms), ``say`` (text, voice, rate), ``tone``
    (hz for ms), or ``file`` (a WAV file at 8 kHz, 16-bit mono)."""

    kind: str
    ms: int = 0
    text: str = ""
    voice: str = "slt"
    rate: int = 5
    hz: float = 1000.0
    path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SEGMENT_KINDS:
            raise ConfigError(f"audio segment kind {self.kind!r}: expected one of {SEGMENT_KINDS}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        """``{"silence_ms": N}``, ``{"say": text, "voice": "slt", "rate": 5}``,
        ``{"tone_hz": 1000, "ms": 500}`` or ``{"file": path}``."""
        known = {"silence_ms", "say", "voice", "rate", "tone_hz", "ms", "file"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"audio segment: unknown field(s) {sorted(unknown)}")
        if "silence_ms" in data:
            return cls("silence", ms=int(data["silence_ms"]))
        if "say" in data:
            return cls("say", text=str(data["say"]), voice=str(data.get("voice", "slt")),
                       rate=int(data.get("rate", 5)))
        if "tone_hz" in data:
            return cls("tone", ms=int(data.get("ms", 500)), hz=float(data["tone_hz"]))
        if "file" in data:
            return cls("file", path=str(data["file"]))
        raise ConfigError(f"audio segment {data!r}: give silence_ms, say, tone_hz or file")


def parse_script(items: list[dict[str, Any]]) -> tuple[Segment, ...]:
    return tuple(Segment.from_dict(item) for item in items)


@functools.lru_cache(maxsize=64)
def render_script(segments: tuple[Segment, ...]) -> bytes:
    """The whole script as 8 kHz 16-bit PCM (rendered once per script and process)."""
    return b"".join(_segment_pcm(segment) for segment in segments)


def segment_spans(segments: tuple[Segment, ...]) -> list[tuple[Segment, int, int]]:
    """Each segment with its (start, end) in ms from the answer, as rendered."""
    spans = []
    at = 0
    for segment in segments:
        length = len(_segment_pcm(segment)) * 1000 // (2 * SAMPLE_RATE)
        spans.append((segment, at, at + length))
        at += length
    return spans


@functools.lru_cache(maxsize=256)
def _segment_pcm(segment: Segment) -> bytes:
    if segment.kind == "silence":
        return b"\x00\x00" * (SAMPLE_RATE * segment.ms // 1000)
    if segment.kind == "tone":
        t = np.arange(SAMPLE_RATE * segment.ms // 1000) / SAMPLE_RATE
        return (6000 * np.sin(2 * np.pi * segment.hz * t)).astype("<i2").tobytes()
    if segment.kind == "file":
        return _wav_pcm(Path(segment.path))
    return _spoken(segment.text, segment.voice, segment.rate)


def _spoken(text: str, voice_name: str, rate: int) -> bytes:
    from robocall.tts.render import render_voice
    from robocall.tts.voices import ESPEAK, FLITE_VOICES, PitchControl, Voice

    voice = FLITE_VOICES.get(voice_name) or Voice(
        ESPEAK, voice_name, "en", "male", PitchControl.ESPEAK
    )
    path = render_voice(text, voice, 5, rate, sample_rate=SAMPLE_RATE)
    try:
        return _wav_pcm(path)
    finally:
        path.unlink(missing_ok=True)


def _wav_pcm(path: Path) -> bytes:
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) != (SAMPLE_RATE, 2, 1):
                raise ConfigError(f"audio file {path}: expected 8 kHz 16-bit mono WAV")
            return wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as err:
        raise ConfigError(f"audio file {path}: {err}") from err


# --- the read-leg recording ---------------------------------------------------------------------


def wav_header(data_bytes: int, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 44-byte PCM WAV header; FreeSWITCH writes it with sizes of 0 until the file closes."""
    return b"RIFF" + struct.pack("<I", 36 + data_bytes if data_bytes else 0) + b"WAVE" + (
        b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
    ) + b"data" + struct.pack("<I", data_bytes)


@dataclass
class ReadLegRecording:
    """A running ``uuid_record ... {RECORD_READ_ONLY=true}`` on a fake channel."""

    path: str
    limit_ms: int
    stopped: Flag
    variables: dict[str, str] = field(default_factory=dict)  # the command's own {...} block
    started: float = 0.0  # switch monotonic seconds

    def event_headers(self) -> list[tuple[str, str]]:
        """Record-File-Path and the recording's own variables, as RECORD_START/STOP carry them."""
        return [("Record-File-Path", self.path)] + [
            (f"Recording-Variable-{name}", value) for name, value in self.variables.items()]


def start_read_leg_recording(channel: Channel, path: str, limit_ms: int,
                             variables: dict[str, str]) -> ReadLegRecording:
    """Open the file (its header written) and raise RECORD_START now, as the switch does before
    ``uuid_record`` answers; the audio follows on the switch's clock (``record_read_leg``)."""
    recording = ReadLegRecording(path, limit_ms, Flag(), variables, channel.switch.monotonic())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(wav_header(0))
    channel.read_recordings[path] = recording
    channel.emit("RECORD_START", recording.event_headers())
    channel.switch.spawn(record_read_leg, channel, recording)
    return recording


def record_read_leg(channel: Channel, recording: ReadLegRecording) -> None:
    """Write the callee's audio into the recording as it is 'heard', until stop, hangup or limit.

    The audio is the callee's script from the moment the recording starts (what FreeSWITCH's
    media bug sees from then on: all of it when ``api_on_answer`` started it at the answer),
    then silence once the script is over. What is written follows the switch's clock, not the
    count of writes: a late wake-up writes the audio it is behind on, as a media bug's frames
    keep coming however busy the reader is.
    """
    switch = channel.switch
    pcm = render_script(channel.callee.audio) if channel.callee.audio else b""
    answered = channel.answered_mono if channel.answered_mono is not None else recording.started
    start = int(switch.scripted_ms(recording.started - answered)) * SAMPLE_RATE // 1000 * 2
    limit = recording.limit_ms * SAMPLE_RATE // 1000 * 2
    frame = SAMPLE_RATE * 20 // 1000 * 2  # whole 20 ms frames, as the media bug writes them
    written = 0
    with open(recording.path, "r+b", buffering=0) as out:
        out.seek(0, 2)
        while written < limit:
            # up to the moment of the stop or hangup too: what was heard until then is kept
            ending = recording.stopped.wait(switch.seconds(CHUNK_MS)) or not channel.up
            heard = int(switch.scripted_ms(switch.monotonic() - recording.started))
            due = min(heard * SAMPLE_RATE // 1000 * 2 // frame * frame, limit)
            if due > written:
                piece = pcm[start + written : start + due]
                piece += b"\x00" * (due - written - len(piece))
                out.write(piece)
                written = due
            if ending:
                break
        out.seek(0)
        out.write(wav_header(written))
    if channel.read_recordings.get(recording.path) is recording:
        del channel.read_recordings[recording.path]
    samples = written // 2
    channel.variables.update({
        "record_file_size": str(44 + written), "record_samples": str(samples),
        "record_seconds": str(samples // SAMPLE_RATE),
        "record_ms": str(samples * 1000 // SAMPLE_RATE),
        "record_completion_cause": "success-maxtime"})
    channel.emit("RECORD_STOP", [*recording.event_headers(),
                                 ("Record-Completion-Cause", "success-maxtime")])

"""Answering-machine detection on corpus clips made in the test session: real TTS, G.711, noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robocall.amd import corpus
from robocall.amd.classifier import AnsweredBy
from robocall.amd.detector import Detector, detect
from robocall.amd.features import FrameAnalyzer, tone_frequency
from robocall.tts.voices import ESPEAK, FLITE

pytestmark = pytest.mark.skipif(
    not (corpus.shutil_which(FLITE) and corpus.shutil_which(ESPEAK) and corpus.shutil_which("sox")),
    reason="flite, espeak-ng and sox make the corpus",
)

VOICES = [corpus.flite_voices()[0], corpus.espeak_voices()[1]]  # slt, espeak-ng en-US


@pytest.fixture(scope="session")
def maker(tmp_path_factory: pytest.TempPathFactory) -> corpus.CorpusMaker:
    return corpus.CorpusMaker(tmp_path_factory.mktemp("amd-corpus"))


def clips(maker: corpus.CorpusMaker, **kwargs: object) -> list[corpus.Clip]:
    return [maker.make(spec) for spec in corpus.specs(voices=VOICES, rates=(5,), **kwargs)]


def test_people_who_say_hello_are_human(maker: corpus.CorpusMaker) -> None:
    for clip in clips(maker, humans=("hello", "who"), machines=()):
        result = detect(clip.pcm)
        assert result.verdict is not None, clip.spec.name
        assert result.verdict.answered_by is AnsweredBy.HUMAN, clip.spec.name
        # decided after the person stopped talking, within a second of it
        assert clip.speech_end_ms < result.verdict.at_ms <= clip.speech_end_ms + 1000


def test_greetings_are_machines_and_the_message_waits_for_the_beep(
    maker: corpus.CorpusMaker,
) -> None:
    for clip in clips(maker, humans=(), machines=("carrier-medium", "personal-long")):
        result = detect(clip.pcm)
        assert result.verdict is not None, clip.spec.name
        assert result.verdict.answered_by is AnsweredBy.MACHINE, clip.spec.name
        assert result.verdict.at_ms < clip.speech_end_ms, "decided while the greeting plays"
        assert result.greeting_end is not None
        # never before the beep (or the end of the greeting's speech)
        assert result.greeting_end.at_ms >= clip.greeting_end_ms, clip.spec.name
        assert result.greeting_end.by == ("beep" if clip.spec.beep else "silence")


def test_a_greeting_that_opens_like_a_person_is_a_machine(maker: corpus.CorpusMaker) -> None:
    # Given greetings that begin "Hello," and a pause, as a person's answer does, then go on
    for clip in clips(maker, humans=(), machines=("personal-hello",)):
        result = detect(clip.pcm)
        # Then the pause after "Hello," is no person's silence: a machine, while it speaks
        assert result.verdict is not None, clip.spec.name
        assert result.verdict.answered_by is AnsweredBy.MACHINE, clip.spec.name
        assert result.verdict.at_ms < clip.speech_end_ms


def test_a_line_where_nobody_speaks_is_unknown(maker: corpus.CorpusMaker) -> None:
    # Given someone who picks up and says nothing: silence, or the line's noise alone
    for voice in VOICES:
        for noise in (False, True):
            clip = maker.make(corpus.ClipSpec("silent", "hello", voice, 5, noise=noise))
            result = detect(clip.pcm)
            # Then no guess: unknown, once the initial silence has run out
            assert result.verdict is not None
            assert (result.verdict.answered_by, result.verdict.reason) == (
                AnsweredBy.UNKNOWN, "silence"), clip.spec.name


def test_audio_in_any_chunking_gives_the_same_findings(maker: corpus.CorpusMaker) -> None:
    clip = maker.make(corpus.ClipSpec("machine", "carrier-short", VOICES[0], 5, beep=True))
    whole = detect(clip.pcm)
    detector = Detector()
    for offset in range(0, len(clip.pcm), 333):  # odd sizes: frames straddle the chunks
        detector.feed(clip.pcm[offset : offset + 333])
    assert detector.classifier.verdict == whole.verdict
    assert detector.classifier.greeting_end == whole.greeting_end


def test_the_tone_detector_hears_beeps_not_voices(maker: corpus.CorpusMaker) -> None:
    # Given a 1 kHz beep through G.711 and a spoken greeting
    beep = np.frombuffer(corpus.g711(corpus.tone(1000, 200).astype("<i2").tobytes()), "<i2")
    assert tone_frequency(beep[:160], 8000) == pytest.approx(1000, abs=25)
    clip = maker.make(corpus.ClipSpec("machine", "personal-medium", VOICES[1], 5))
    analyzer = FrameAnalyzer()
    size = analyzer.frame_bytes
    tones = [
        analyzer.analyze(clip.pcm[i : i + size]).tone_hz
        for i in range(0, len(clip.pcm) - size + 1, size)
    ]
    # Then no run of speech frames is taken for a beep (an odd vowel frame may look tonal)
    longest = run = 0
    for hz in tones:
        run = run + 1 if hz is not None else 0
        longest = max(longest, run)
    assert longest * 20 < 120


def test_a_clip_is_made_the_same_way_every_time(maker: corpus.CorpusMaker, tmp_path: Path) -> None:
    spec = corpus.ClipSpec("human", "hello", VOICES[0], 5, noise=True)
    assert maker.make(spec) == maker.make(spec)

"""flite rendered in worker processes that keep the voice loaded: the same speech as the program
(same length, pitch and rate move as they should), bounded workers, a stuck render ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from robocall.errors import TtsError
from robocall.tts.cache import TtsCache
from robocall.tts.flite_lib import WorkerRenderer
from robocall.tts.render import render_voice
from robocall.tts.voices import FLITE_VOICES
from tests.support.audio import median_f0_hz, read_wav

TEXT = "Hello Alex, your parcel arrives today between nine and eleven."
CORNERS = (0, 5, 9)


@pytest.fixture
def renderer() -> Iterator[WorkerRenderer]:
    workers = WorkerRenderer()
    yield workers
    workers.close()


@pytest.mark.parametrize("name", sorted(FLITE_VOICES))
def test_each_voice_says_what_the_program_says(
    name: str, renderer: WorkerRenderer, tmp_path: Path
) -> None:
    # given each flite voice at its natural settings and at the corners of pitch and rate
    voice = FLITE_VOICES[name]
    for pitch, rate in ((5, 5), (0, 9), (9, 0)):
        # when rendered by a worker and by the flite program + sox
        worker = read_wav(renderer(TEXT, voice, pitch, rate, output=tmp_path / "w.wav"))
        program = read_wav(render_voice(TEXT, voice, pitch, rate, output=tmp_path / "p.wav"))
        # then both are 8 kHz mono 16-bit speech of the same length, normalised alike
        assert (worker.sample_rate, worker.channels, worker.sample_width_bytes) == (8000, 1, 2)
        assert len(worker.samples) == len(program.samples), (name, pitch, rate)
        assert worker.peak == pytest.approx(program.peak, rel=0.05)
        assert worker.rms == pytest.approx(program.rms, rel=0.1), (name, pitch, rate)


@pytest.mark.parametrize("name", sorted(set(FLITE_VOICES) - {"rms"}))
def test_pitch_and_rate_move_in_a_worker(
    name: str, renderer: WorkerRenderer, tmp_path: Path
) -> None:
    # (rms's pitch goes through sox, so the program renders it: not a worker's case)
    voice = FLITE_VOICES[name]
    low, natural, high = (
        median_f0_hz(read_wav(renderer(TEXT, voice, p, 5, output=tmp_path / f"p{p}.wav")))
        for p in CORNERS
    )
    assert high > natural > low > 0
    slow, fast = (
        read_wav(renderer(TEXT, voice, 5, r, output=tmp_path / f"r{r}.wav")).duration_seconds
        for r in (0, 9)
    )
    assert slow > fast


def test_many_renders_at_once_use_as_many_workers_as_render_slots(
    renderer: WorkerRenderer, tmp_path: Path
) -> None:
    # given a cache rendering two at a time through workers
    cache = TtsCache(tmp_path / "tts", renderer=renderer, max_concurrent=2)
    # when 40 different names are asked for at once
    askers = [
        gevent.spawn(cache.get_or_render, f"Name number {index}", "en", None, 5, 5)
        for index in range(40)
    ]
    gevent.joinall(askers, raise_error=True)
    # then each is a file of speech, and two workers did all of it
    assert len({asker.value for asker in askers}) == 40
    assert all(read_wav(asker.value).rms > 100 for asker in askers)
    assert renderer.started == 2


def test_a_render_over_its_timeout_fails_and_the_next_one_works(
    renderer: WorkerRenderer, tmp_path: Path
) -> None:
    voice = FLITE_VOICES["slt"]
    with pytest.raises(TtsError, match="flite did not finish within 0.01 s"):
        renderer(TEXT * 10, voice, 5, 5, output=tmp_path / "slow.wav", timeout=0.01)
    assert read_wav(renderer("Still here.", voice, 5, 5, output=tmp_path / "a.wav")).rms > 100


def test_a_worker_keyed_cache_keeps_its_files_apart(tmp_path: Path) -> None:
    # Another resampler makes other bytes: the same text is another key, never a mixed-up file
    programs = TtsCache(tmp_path / "tts")
    workers = TtsCache(tmp_path / "tts", renderer=WorkerRenderer())
    assert programs.key(TEXT, "en", None, 5, 5) != workers.key(TEXT, "en", None, 5, 5)


def test_espeak_voices_and_sox_pitch_go_to_the_program(
    renderer: WorkerRenderer, tmp_path: Path
) -> None:
    from robocall.tts.voices import select_voice

    renderer("Xin chào", select_voice("vi", None), 5, 5, output=tmp_path / "vi.wav")
    renderer(TEXT, FLITE_VOICES["rms"], 8, 5, output=tmp_path / "rms.wav")
    assert renderer.started == 0


def test_closing_the_cache_stops_its_workers(tmp_path: Path) -> None:
    renderer = WorkerRenderer()
    cache = TtsCache(tmp_path / "tts", renderer=renderer)
    cache.get_or_render("Goodbye.", "en", None, 5, 5)
    processes = [worker.process for worker in renderer._idle]
    assert len(processes) == 1 and processes[0].poll() is None
    cache.close()
    assert processes[0].poll() is not None

"""Personalised messages spoken in pieces over the real engines: the shared text is rendered
once, each destination's values are rendered on their own, and the joined audio holds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robocall.calls.prompts import Prompts
from robocall.flow.model import Message
from robocall.tts.cache import TtsCache
from robocall.tts.join import SENTENCE_PAUSE_MS, TRIM_MARGIN_MS, read_pcm, trim_to_speech
from tests.integration.test_tts_cache import RenderLog
from tests.support.audio import read_wav

GATHER = Message("Dear Mr {{name}}, the amount of {{amount}} will be due on {{dueDate}}")
VALUES = {"amount": "200,000$", "dueDate": "August 20th, 2020"}
QUIET_FRAME_RMS = 100.0  # 16-bit units: below this a 10 ms frame is silence to a listener


@pytest.fixture
def log() -> RenderLog:
    return RenderLog()


@pytest.fixture
def cache(tmp_path: Path, log: RenderLog) -> TtsCache:
    return TtsCache(tmp_path / "tts", renderer=log)


def test_the_shared_text_is_rendered_once_and_each_name_once(
    cache: TtsCache, log: RenderLog
) -> None:
    # given a personalised message for three destinations (two share a name)
    prompts = Prompts(cache)
    names = ["Alex", "Binh", "Alex"]
    # when each destination's audio is asked for
    paths = [prompts.audio_path(GATHER, {"name": name, **VALUES}) for name in names]
    # then the text around the placeholders and the shared values were rendered once each,
    # every name once, and the two destinations named Alex share one file
    assert sorted(log.calls) == sorted(
        ["Dear Mr", ", the amount of", "will be due on", "200,000$", "August 20th, 2020",
         "Alex", "Binh"]
    )  # fmt: skip
    assert paths[0] == paths[2] != paths[1]
    assert cache.joins == 2


def test_a_message_asked_for_again_is_its_joined_file_alone(
    cache: TtsCache, log: RenderLog
) -> None:
    # given one destination's message, joined once (the prefetcher, before the claim)
    prompts = Prompts(cache)
    first = prompts.audio_path(GATHER, {"name": "Alex", **VALUES})
    hits = cache.hits
    # when the call's runner asks for it again
    again = prompts.audio_path(GATHER, {"name": "Alex", **VALUES})
    # then it is the same file, found by one lookup: no piece was looked at or rendered
    assert again == first
    assert cache.hits == hits + 1
    assert cache.joins == 1 and len(log.calls) == 6


def test_a_lookup_finds_what_is_rendered_and_renders_nothing(
    cache: TtsCache, log: RenderLog
) -> None:
    # given a personalised message and a plain one, neither rendered yet
    prompts = Prompts(cache)
    alex = {"name": "Alex", **VALUES}
    plain = Message("Your appointment is confirmed.")
    # then the lookup finds neither, and renders nothing
    assert prompts.audio_if_ready(GATHER, alex) is None
    assert prompts.audio_if_ready(plain, {}) is None
    assert log.calls == []
    # when both are rendered (the prefetcher, before the claim)
    joined, whole = prompts.audio(GATHER, alex), prompts.audio(plain, {})
    renders = len(log.calls)
    # then the lookup gives what audio() gives, for that destination only, rendering nothing
    assert prompts.audio_if_ready(GATHER, alex) == joined
    assert prompts.audio_if_ready(plain, {}) == whole
    assert prompts.audio_if_ready(GATHER, {"name": "Binh", **VALUES}) is None
    assert len(log.calls) == renders
    # and a message the engines cannot speak is left to audio() to refuse
    assert prompts.audio_if_ready(Message("Hello", lang="xx"), {}) is None


def test_joins_for_many_destinations_are_the_same_as_one_at_a_time(
    tmp_path: Path, cache: TtsCache
) -> None:
    # given the same message joined for many names by one cache (which remembers the trimmed
    # shared pieces) and by a fresh cache per name
    prompts = Prompts(cache)
    names = ["Alex", "Binh", "Chandra", "Dewi"]
    joined = [prompts.audio_path(GATHER, {"name": name, **VALUES}) for name in names]
    for index, name in enumerate(names):
        fresh = TtsCache(tmp_path / f"fresh{index}", renderer=RenderLog())
        alone = Prompts(fresh).audio_path(GATHER, {"name": name, **VALUES})
        # then every joined file holds exactly the samples of the one joined alone
        assert read_pcm(joined[index]) == read_pcm(alone)


def test_a_message_without_placeholders_is_rendered_whole(cache: TtsCache, log: RenderLog) -> None:
    Prompts(cache).audio_path(Message("Press one to confirm, two to cancel."), {})
    assert log.calls == ["Press one to confirm, two to cancel."]
    assert cache.joins == 0


def test_the_joined_audio_holds_the_name_as_spoken_on_its_own(cache: TtsCache) -> None:
    # given the message for a short and a long name
    prompts = Prompts(cache)
    short = prompts.audio_path(GATHER, {"name": "Jo", **VALUES})
    long = prompts.audio_path(GATHER, {"name": "Bartholomew Fitzgerald Montgomery", **VALUES})
    # then each joined file is a playable 8 kHz mono WAV holding its name's speech verbatim
    for path, name in ((short, "Jo"), (long, "Bartholomew Fitzgerald Montgomery")):
        wav = read_wav(path)
        assert (wav.sample_rate, wav.channels, wav.sample_width_bytes) == (8000, 1, 2)
        samples, rate = read_pcm(cache.get_or_render(name, "en", None, 5, 5))
        spoken = trim_to_speech(samples, rate).tobytes()
        assert len(spoken) > 2 * rate * 2 * TRIM_MARGIN_MS // 1000  # more than the margins
        assert spoken in path.read_bytes()
    # and the long name makes the message longer by about what it takes to say
    difference = read_wav(long).duration_seconds - read_wav(short).duration_seconds
    long_name = trim_to_speech(
        *read_pcm(cache.get_or_render("Bartholomew Fitzgerald Montgomery", "en", None, 5, 5))
    )
    short_name = trim_to_speech(*read_pcm(cache.get_or_render("Jo", "en", None, 5, 5)))
    assert difference == pytest.approx((len(long_name) - len(short_name)) / 8000, abs=0.01)


def test_no_joint_is_dead_air(cache: TtsCache) -> None:
    # given a personalised message
    path = Prompts(cache).audio_path(GATHER, {"name": "Alex", **VALUES})
    wav = read_wav(path)
    # then no silence inside it is longer than a sentence pause and the trimming margins (the
    # engines' own ~200 ms at each end of every piece is gone), and it is speech throughout
    frame = wav.sample_rate // 100
    frames = wav.samples[: len(wav.samples) // frame * frame].reshape(-1, frame)
    loud = np.sqrt((frames**2).mean(axis=1)) > QUIET_FRAME_RMS
    first, last = np.argmax(loud), len(loud) - np.argmax(loud[::-1])
    longest_quiet = quiet = 0
    for is_loud in loud[first:last]:
        quiet = 0 if is_loud else quiet + 1
        longest_quiet = max(longest_quiet, quiet)
    assert longest_quiet * 10 <= SENTENCE_PAUSE_MS + 2 * TRIM_MARGIN_MS + 100
    assert loud.mean() > 0.5

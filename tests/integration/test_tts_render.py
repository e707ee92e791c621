"""Rendering through the real engines, judged on the audio files they produce."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from robocall.errors import TtsError
from robocall.flow.model import Gender
from robocall.tts.render import render, render_voice
from robocall.tts.voices import ESPEAK, FLITE_VOICES, available_languages, select_voice
from tests.support.audio import median_f0_hz, read_wav

SENTENCES = {
    "en": "Hello, this is a reminder that your appointment is tomorrow at ten.",
    "vi": "Xin chào, đây là lời nhắc về cuộc hẹn của bạn vào ngày mai.",
    "cmn": "你好，这是提醒您明天十点的预约。",
    "th": "สวัสดีครับ นี่คือการแจ้งเตือนนัดหมายของคุณพรุ่งนี้",
}
GENDERS = ("male", "female")
CORNERS = (0, 5, 9)
AUDIBLE_RMS = 300.0  # 16-bit units: about -40 dBFS; rendered speech sits far above
FULL_SCALE = 32767


@pytest.fixture(scope="module")
def corners(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, int, int], Path]:
    """Every language x gender x pitch 0/5/9 x rate 0/5/9, rendered once for the module."""
    directory = tmp_path_factory.mktemp("corners")
    rendered = {}
    for lang, gender, pitch, rate in itertools.product(SENTENCES, GENDERS, CORNERS, CORNERS):
        output = directory / f"{lang}-{gender}-p{pitch}-r{rate}.wav"
        rendered[lang, gender, pitch, rate] = render(
            SENTENCES[lang], lang, gender, pitch, rate, output=output
        )
    return rendered


def test_every_corner_is_a_playable_8k_mono_16bit_wav_with_speech(
    corners: dict[tuple[str, str, int, int], Path],
) -> None:
    for corner, path in corners.items():
        wav = read_wav(path)
        assert (wav.sample_rate, wav.channels, wav.sample_width_bytes) == (8000, 1, 2), corner
        assert wav.duration_seconds > 1.0, corner
        assert wav.rms > AUDIBLE_RMS, corner
        # normalised 3 dB below full scale before resampling: loud, and nothing clipped
        assert 0.6 * FULL_SCALE < wav.peak < 0.9 * FULL_SCALE, corner


def test_a_lower_rate_speaks_longer(corners: dict[tuple[str, str, int, int], Path]) -> None:
    for lang, gender, pitch in itertools.product(SENTENCES, GENDERS, CORNERS):
        slow, natural, fast = (
            read_wav(corners[lang, gender, pitch, rate]).duration_seconds for rate in CORNERS
        )
        assert slow > natural > fast, (lang, gender, pitch, slow, natural, fast)


def test_a_higher_pitch_raises_the_fundamental_frequency(
    corners: dict[tuple[str, str, int, int], Path],
) -> None:
    for lang, gender, rate in itertools.product(SENTENCES, GENDERS, CORNERS):
        low, natural, high = (
            median_f0_hz(read_wav(corners[lang, gender, pitch, rate])) for pitch in CORNERS
        )
        assert high > natural > low > 0, (lang, gender, rate, low, natural, high)


def test_female_voices_speak_higher_than_male_ones(
    corners: dict[tuple[str, str, int, int], Path],
) -> None:
    for lang in SENTENCES:
        male, female = (median_f0_hz(read_wav(corners[lang, g, 5, 5])) for g in GENDERS)
        assert female > male * 1.2, (lang, male, female)


@pytest.mark.parametrize("name", sorted(FLITE_VOICES))
def test_every_flite_voice_moves_pitch_and_rate(name: str, tmp_path: Path) -> None:
    # Including rms (pitch through sox) and kal (8 kHz diphone, f0 target in Hz)
    voice = FLITE_VOICES[name]
    text = SENTENCES["en"]
    low, natural, high = (
        median_f0_hz(read_wav(render_voice(text, voice, p, 5, output=tmp_path / f"p{p}.wav")))
        for p in CORNERS
    )
    assert high > natural > low > 0
    slow, fast = (
        read_wav(render_voice(text, voice, 5, r, output=tmp_path / f"r{r}.wav")).duration_seconds
        for r in (0, 9)
    )
    assert slow > fast


def test_16k_output_for_wideband_calls(tmp_path: Path) -> None:
    wav = read_wav(render("Wideband.", "en", "female", 5, 5, output=tmp_path / "a.wav",
                          sample_rate=16000))  # fmt: skip
    assert (wav.sample_rate, wav.channels, wav.sample_width_bytes) == (16000, 1, 2)
    assert wav.rms > AUDIBLE_RMS


def test_the_flow_models_gender_chooses_the_voice() -> None:
    assert select_voice("en", Gender.MALE) == FLITE_VOICES["rms"]
    assert select_voice("en", Gender.FEMALE) == FLITE_VOICES["slt"]
    assert select_voice("vi", Gender.FEMALE).name.endswith("+f3")
    assert "+" not in select_voice("vi", Gender.MALE).name  # espeak-ng's own voices are male


def test_without_gender_english_speaks_as_slt(tmp_path: Path) -> None:
    default = render("Default voice.", "en", None, 5, 5, output=tmp_path / "default.wav")
    female = render("Default voice.", "en", "female", 5, 5, output=tmp_path / "female.wav")
    assert default.read_bytes() == female.read_bytes()


@pytest.mark.parametrize("lang", ["en", "vi"])
@pytest.mark.parametrize("text", ["-v --help", "--stdin", "-o /tmp/x.wav", "$(touch /tmp/pwned)"])
def test_text_that_looks_like_options_is_spoken(lang: str, text: str, tmp_path: Path) -> None:
    # Given text an engine would take as options if it reached a command line, then it is only
    # spoken: the file holds speech, and the sentence with it is longer than without it
    with_text = read_wav(render(text + " one two three", lang, "male", 5, 5,
                                output=tmp_path / "with.wav"))  # fmt: skip
    without = read_wav(render("one two three", lang, "male", 5, 5, output=tmp_path / "bare.wav"))
    assert with_text.rms > AUDIBLE_RMS
    assert with_text.duration_seconds > without.duration_seconds
    assert not Path("/tmp/pwned").exists()


def test_a_message_with_newlines_is_spoken_whole(tmp_path: Path) -> None:
    one_line = read_wav(render("one. two. three.", "vi", "male", 5, 5, output=tmp_path / "a.wav"))
    lines = read_wav(render("one.\ntwo.\nthree.", "vi", "male", 5, 5, output=tmp_path / "b.wav"))
    assert lines.duration_seconds > 0.8 * one_line.duration_seconds


def test_every_language_robocall_claims_speaks(tmp_path: Path) -> None:
    # One smoke pass over every language validation accepts, with the female variant
    # (words, not only digits: espeak-ng has no number rules for cv, he, nog, qya, sjn, tk, chr)
    silent = []
    for lang in sorted(available_languages()):
        output = tmp_path / f"{lang}.wav"
        wav = read_wav(render("hello 1 2 3", lang, "female", 5, 5, output=output))
        if wav.rms <= AUDIBLE_RMS or wav.duration_seconds < 0.3:
            silent.append(lang)
    assert silent == []
    assert {"en", "vi", "id", "ms", "cmn", "yue", "th"} <= available_languages()


def test_mandarin_characters_are_read_as_mandarin() -> None:
    # Given the voice chosen for cmn, when espeak-ng shows its phonemes for 你好, then no word
    # switches to English (espeak-ng 1.51's plain cmn voice reads them as "nigh three how three")
    voice = select_voice("cmn", "male")
    phonemes = subprocess.run(
        [ESPEAK, "-v", voice.name, "-q", "-x", "--stdin"],
        input="你好".encode(), capture_output=True, check=True, timeout=30,
    ).stdout.decode()  # fmt: skip
    assert "(en)" not in phonemes
    assert phonemes.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("   ", "en", None, 5, 5), "blank"),
        (("hi", "xx-nowhere", None, 5, 5), "language 'xx-nowhere' is not spoken here; languages:"),
        (("hi", "en", "male", 10, 5), "pitch 10"),
        (("hi", "vi", "female", 5, -1), "rate -1"),
    ],
)
def test_bad_requests_fail_with_a_clear_tts_error(args: tuple, message: str) -> None:
    with pytest.raises(TtsError, match=message.replace("(", r"\(")):
        render(*args)


def test_text_an_engine_cannot_say_is_an_error_not_dead_air(tmp_path: Path) -> None:
    # Given Hebrew, whose espeak-ng voice has no rules for digits, when a message is only digits
    with pytest.raises(TtsError, match="voice sem/he said nothing for this text"):
        render("1 2 3", "he", "male", 5, 5, output=tmp_path / "x.wav")
    # then nothing is left behind to be played
    assert not (tmp_path / "x.wav").exists()


def test_a_render_that_overruns_its_timeout_fails(tmp_path: Path) -> None:
    long_text = "This sentence is repeated to take a while. " * 25
    with pytest.raises(TtsError, match="flite did not finish within 0.01 s"):
        render(long_text, "en", "male", 5, 5, output=tmp_path / "x.wav", timeout=0.01)


def test_a_missing_engine_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a PATH without the engines
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TtsError, match=r"flite is not installed \(apt-get install flite\)"):
        render_voice("hi", FLITE_VOICES["slt"], 5, 5, output=tmp_path / "x.wav")

"""Voice choice and the pitch/rate mapping, without running an engine."""

from __future__ import annotations

import pytest

from robocall.errors import TtsError
from robocall.tts import voices
from robocall.tts.voices import (
    ESPEAK,
    FLITE_VOICES,
    PitchControl,
    Voice,
    engine_options,
    parse_espeak_voices,
    pitch_ratio,
    sox_pitch_cents,
    speed_ratio,
)

# Lines of `espeak-ng --voices` (1.51) as printed on this machine.
ESPEAK_LISTING = """\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  chr-US-Qaaa-x-west --/M      Cherokee_          iro/chr              
 5  cmn             --/M      Chinese_(Mandarin,_latin_as_English) sit/cmn              (zh-cmn 5)(zh 5)
 5  cmn-latn-pinyin --/M      Chinese_(Mandarin,_latin_as_Pinyin) sit/cmn-Latn-pinyin  (zh-cmn 5)(zh 5)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  vi              --/M      Vietnamese_(Northern) aav/vi               
 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)
 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping (zh-yue 5)(zh 8)
"""  # noqa: W291, E501 - espeak-ng's own lines, trailing blanks and all


def test_espeak_languages_are_addressed_by_voice_file() -> None:
    # Given the listing, when it is parsed, then each code maps to the file -v can find
    files = parse_espeak_voices(ESPEAK_LISTING)
    assert files["chr-US-Qaaa-x-west"] == "iro/chr"
    assert files["vi"] == "aav/vi"
    assert files["en-us"] == "gmw/en-US"


def test_a_code_listed_twice_takes_the_file_named_after_it() -> None:
    assert parse_espeak_voices(ESPEAK_LISTING)["yue"] == "sit/yue"


def test_mandarin_speaks_through_the_pinyin_voice() -> None:
    # espeak-ng 1.51's sit/cmn reads Hanzi as English-spelled pinyin
    assert parse_espeak_voices(ESPEAK_LISTING)["cmn"] == "sit/cmn-Latn-pinyin"


def test_natural_pitch_and_rate_pass_no_settings() -> None:
    # Given every flite voice and an espeak voice, at 5/5 the engine speaks as it does by default
    for voice in FLITE_VOICES.values():
        assert engine_options(voice, 5, 5) == ["-voice", voice.name]
    espeak_voice = Voice(ESPEAK, "aav/vi+f3", "vi", "female", PitchControl.ESPEAK)
    assert engine_options(espeak_voice, 5, 5) == ["-v", "aav/vi+f3"]


def test_clustergen_voices_shift_f0_by_ratio() -> None:
    options = engine_options(FLITE_VOICES["slt"], 9, 5)
    assert options == ["-voice", "slt", "--setf", f"f0_shift={pitch_ratio(9):.4f}"]
    assert pitch_ratio(9) > 1 > pitch_ratio(0)


def test_kal_moves_its_f0_target_from_95_hz() -> None:
    options = engine_options(FLITE_VOICES["kal"], 0, 5)
    assert options[-1] == f"int_f0_target_mean={95 * pitch_ratio(0):.1f}"


def test_rms_pitch_goes_to_sox_not_to_flite() -> None:
    # Given rms, which ignores flite's f0 settings, when pitch is 9
    rms = FLITE_VOICES["rms"]
    # then flite gets no pitch setting and sox shifts by 4 steps of 1.2 semitones
    assert engine_options(rms, 9, 5) == ["-voice", "rms"]
    assert sox_pitch_cents(rms, 9) == 480
    assert sox_pitch_cents(rms, 0) == -600
    assert sox_pitch_cents(FLITE_VOICES["slt"], 9) == 0


def test_rate_stretches_flite_durations_and_scales_espeak_words_per_minute() -> None:
    assert engine_options(FLITE_VOICES["slt"], 5, 0)[-1] == f"duration_stretch={1.1**5:.4f}"
    espeak_voice = Voice(ESPEAK, "aav/vi", "vi", "male", PitchControl.ESPEAK)
    assert engine_options(espeak_voice, 0, 9) == ["-v", "aav/vi", "-p", "20", "-s", "256"]
    assert engine_options(espeak_voice, 9, 0) == ["-v", "aav/vi", "-p", "74", "-s", "109"]


def test_each_step_moves_pitch_and_rate_one_way() -> None:
    ratios = [pitch_ratio(level) for level in range(10)]
    speeds = [speed_ratio(level) for level in range(10)]
    assert ratios == sorted(ratios) and len(set(ratios)) == 10
    assert speeds == sorted(speeds) and len(set(speeds)) == 10
    assert pitch_ratio(5) == speed_ratio(5) == 1.0


@pytest.mark.parametrize("level", [-1, 10, 2.5, "5", True, None])
def test_levels_outside_0_to_9_are_refused(level: object) -> None:
    with pytest.raises(TtsError, match="expected a whole number 0-9"):
        engine_options(FLITE_VOICES["slt"], level, 5)  # type: ignore[arg-type]
    with pytest.raises(TtsError, match="rate"):
        engine_options(FLITE_VOICES["slt"], 5, level)  # type: ignore[arg-type]


def test_unknown_gender_is_refused() -> None:
    with pytest.raises(TtsError, match="expected male or female"):
        voices.select_voice("en", "robot")

"""Which voice speaks a message, and how pitch and rate 0-9 become each engine's settings.

English goes to flite, every other language to espeak-ng. The engines' voice lists are asked
once per process (they do not change while it runs); the answer is also what submission-time
validation checks ``lang`` against. Everything below the listings is pure.

Pitch and rate run 0-9 with 5 the voice's natural value (nothing is passed for 5, so a message at
5/5 sounds exactly as the engine speaks by default). Each step is a fixed ratio, chosen so one
step is audible: pitch ~1.2 semitones, rate 10 %. Pitch 0 stays above ~65 Hz for the
lowest male voice (kal, 95 Hz natural), where a voice still sounds like speech.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum

from robocall.errors import TtsError

FLITE = "flite"
ESPEAK = "espeak-ng"

NATURAL = 5
LEVELS = range(10)
SEMITONES_PER_PITCH_STEP = 1.2
SPEED_RATIO_PER_RATE_STEP = 1.1
ESPEAK_NATURAL_PITCH = 50  # espeak-ng -p default (0-99)
ESPEAK_PITCH_PER_STEP = 6  # measured: 6 units of -p move f0 ~1.2 semitones
ESPEAK_NATURAL_WPM = 175  # espeak-ng -s default

# When a message gives no gender. Female because slt is flite's clearest voice.
DEFAULT_GENDER = "female"

# espeak-ng 1.51's "cmn" voice (sit/cmn, "latin as English") turns Hanzi into tone-numbered
# pinyin and reads that as English ("nigh three how three" for 你好); the pinyin voice speaks
# the same characters as Mandarin. Measured with `espeak-ng -x`.
ESPEAK_VOICE_FILE_OVERRIDES = {"cmn": "sit/cmn-Latn-pinyin"}


class PitchControl(StrEnum):
    """How a voice's pitch is moved."""

    F0_SHIFT = "f0_shift"  # flite clustergen voices: --setf f0_shift=<ratio>
    F0_TARGET = "f0_target"  # flite diphone voices: --setf int_f0_target_mean=<Hz>
    SOX = "sox"  # the engine ignores pitch settings: sox's `pitch` effect (keeps duration)
    ESPEAK = "espeak"  # espeak-ng -p


@dataclass(frozen=True)
class Voice:
    """One engine voice: ``name`` is what the engine is given (flite ``-voice``, espeak ``-v``)."""

    engine: str
    name: str
    lang: str
    gender: str
    pitch_control: PitchControl
    natural_f0_hz: float = 0.0  # only for F0_TARGET: the voice's own int_f0_target_mean


# flite 2.2 voices. rms ignores both int_f0_target_mean and f0_shift (measured: identical f0 at
# every setting), so its pitch goes through sox; kal's natural int_f0_target_mean is 95 (setting
# 95 gives a byte-identical file).
FLITE_VOICES = {
    "slt": Voice(FLITE, "slt", "en", "female", PitchControl.F0_SHIFT),
    "rms": Voice(FLITE, "rms", "en", "male", PitchControl.SOX),
    "awb": Voice(FLITE, "awb", "en", "male", PitchControl.F0_SHIFT),
    "kal": Voice(FLITE, "kal", "en", "male", PitchControl.F0_TARGET, natural_f0_hz=95.0),
}
# rms for men: American like slt and a clustergen voice (kal is a robotic diphone voice, awb
# speaks with a Scottish accent).
ENGLISH_BY_GENDER = {"female": FLITE_VOICES["slt"], "male": FLITE_VOICES["rms"]}
# espeak-ng's language voices are all male; the variants make the female one.
ESPEAK_VARIANT_BY_GENDER = {"male": "", "female": "+f3"}


@functools.cache
def available_languages() -> frozenset[str]:
    """Language codes some installed engine can speak (e.g. ``en``, ``vi``, ``cmn``)."""
    languages: set[str] = set()
    if flite_installed():
        languages.add("en")
    languages.update(espeak_languages())
    return frozenset(languages)


@functools.cache
def flite_installed() -> bool:
    """Whether flite is on the PATH (asked once: a cache hit should not search the PATH)."""
    return shutil.which(FLITE) is not None


def espeak_languages() -> frozenset[str]:
    """Language codes espeak-ng lists in ``--voices`` (empty when it is not installed)."""
    return frozenset(espeak_voice_files())


@functools.cache
def espeak_voice_files() -> dict[str, str]:
    """espeak-ng language code -> the voice file to pass to ``-v`` (empty when not installed)."""
    if not shutil.which(ESPEAK):
        return {}
    try:
        listing = subprocess.run(
            [ESPEAK, "--voices"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise TtsError(f"{ESPEAK} --voices failed: {err}") from err
    return parse_espeak_voices(listing)


def parse_espeak_voices(listing: str) -> dict[str, str]:
    """Language code -> voice file from the text of ``espeak-ng --voices``.

    The file path, not the language code, is what robocall passes to ``-v``: espeak-ng 1.51
    cannot find some voices by their code (``chr-US-Qaaa-x-west`` fails, ``iro/chr`` works).
    When a code is listed twice (``yue``), the file named after the code wins.
    """
    files: dict[str, str] = {}
    for line in listing.splitlines()[1:]:  # the first line is the column header
        columns = line.split()
        if len(columns) < 5:
            continue
        code, voice_file = columns[1], columns[4]
        named_after_code = voice_file.rsplit("/", 1)[-1].lower() == code.lower()
        if code not in files or named_after_code:
            files[code] = voice_file
    for code, voice_file in ESPEAK_VOICE_FILE_OVERRIDES.items():
        if code in files:
            files[code] = voice_file
    return files


def select_voice(lang: str, gender: str | None) -> Voice:
    """The voice that speaks ``lang`` in ``gender`` (``male``/``female``; None: the default)."""
    chosen_gender = DEFAULT_GENDER if gender is None else str(getattr(gender, "value", gender))
    if chosen_gender not in ENGLISH_BY_GENDER:
        raise TtsError(f"gender {chosen_gender!r}: expected male or female")
    if lang == "en" and flite_installed():
        return ENGLISH_BY_GENDER[chosen_gender]
    voice_files = espeak_voice_files()
    if lang not in voice_files:
        known = ", ".join(sorted(available_languages())) or "none (install flite or espeak-ng)"
        raise TtsError(f"language {lang!r} is not spoken here; languages: {known}")
    name = voice_files[lang] + ESPEAK_VARIANT_BY_GENDER[chosen_gender]
    return Voice(ESPEAK, name, lang, chosen_gender, PitchControl.ESPEAK)


# --- pitch and rate -> engine settings (pure) -------------------------------------------------


def check_level(what: str, level: int) -> None:
    """Raise TtsError unless ``level`` is a whole number 0-9."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise TtsError(f"{what} {level!r}: expected a whole number 0-9")


def pitch_ratio(pitch: int) -> float:
    """How much the fundamental frequency is multiplied by at ``pitch`` (1.0 at 5)."""
    return float(2 ** ((pitch - NATURAL) * SEMITONES_PER_PITCH_STEP / 12))


def speed_ratio(rate: int) -> float:
    """How much faster than natural the voice speaks at ``rate`` (1.0 at 5)."""
    return float(SPEED_RATIO_PER_RATE_STEP ** (rate - NATURAL))


def engine_options(voice: Voice, pitch: int, rate: int) -> list[str]:
    """The engine's command-line options for voice, pitch and rate (input/output not included)."""
    check_level("pitch", pitch)
    check_level("rate", rate)
    if voice.engine == ESPEAK:
        options = ["-v", voice.name]
        if pitch != NATURAL:
            options += ["-p", str(ESPEAK_NATURAL_PITCH + ESPEAK_PITCH_PER_STEP * (pitch - NATURAL))]
        if rate != NATURAL:
            options += ["-s", str(round(ESPEAK_NATURAL_WPM * speed_ratio(rate)))]
        return options
    options = ["-voice", voice.name]
    if pitch != NATURAL and voice.pitch_control is PitchControl.F0_SHIFT:
        options += ["--setf", f"f0_shift={pitch_ratio(pitch):.4f}"]
    elif pitch != NATURAL and voice.pitch_control is PitchControl.F0_TARGET:
        target = voice.natural_f0_hz * pitch_ratio(pitch)
        options += ["--setf", f"int_f0_target_mean={target:.1f}"]
    if rate != NATURAL:
        options += ["--setf", f"duration_stretch={1 / speed_ratio(rate):.4f}"]
    return options


def sox_pitch_cents(voice: Voice, pitch: int) -> int:
    """Cents for sox's ``pitch`` effect: non-zero only for voices whose engine ignores pitch."""
    check_level("pitch", pitch)
    if voice.pitch_control is not PitchControl.SOX:
        return 0
    return round((pitch - NATURAL) * SEMITONES_PER_PITCH_STEP * 100)

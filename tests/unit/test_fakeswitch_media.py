"""Lengths of what the fake plays, WAV files it records, and play_and_get_digits arguments."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from robocall.testing import media


@pytest.mark.parametrize(("target", "length_ms"), [
    ("silence_stream://250", 250),
    ("silence_stream://1500,1400", 1500),
    ("tone_stream://%(200,0,800)", 200),
    ("tone_stream://%(1000,0,440);loops=2", 2000),
    ("tone_stream://%(100,50,440);%(100,50,880);loops=3", 900),
    ("tts://flite|slt|Hello", 5 * media.TTS_MS_PER_CHAR),
    ("/no/such/file.wav", media.DEFAULT_PLAY_MS),
])
def test_play_lengths(target: str, length_ms: int) -> None:
    # Then each kind of target takes its own length
    assert media.play_length_ms(target) == length_ms


def test_a_wav_file_plays_for_its_real_length(tmp_path: Path) -> None:
    # Given a 16 kHz WAV of 0.75 s
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x00" * 12000)

    # Then its play length is 750 ms
    assert media.play_length_ms(str(path)) == 750


def test_recording_writes_8khz_mono_16bit(tmp_path: Path) -> None:
    # When a 2.02 s recording is written (esl-recording.txt: 16160 samples)
    samples = media.write_silence_wav(str(tmp_path / "sub" / "rec.wav"), 2020)

    # Then the file is what FreeSWITCH writes
    with wave.open(str(tmp_path / "sub" / "rec.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 8000, 2)
        assert wav.getnframes() == samples == 16160


def test_pagd_arguments_keep_quotes_regexp_and_terminator() -> None:
    # Given the argument recorded in esl-transcript.txt
    argument = ("1 4 1 12000 # 'tts://flite|slt|Please enter your code, then press pound.' "
                "'tts://flite|slt|Sorry, that is not valid.' pagd_digits \\d+ 3000")

    # When it is parsed
    args = media.parse_pagd(argument)

    # Then every field is where FreeSWITCH reads it
    assert (args.min_digits, args.max_digits, args.tries, args.timeout_ms) == (1, 4, 1, 12000)
    assert args.terminators == "#"
    assert args.prompt == "tts://flite|slt|Please enter your code, then press pound."
    assert args.variable == "pagd_digits"
    assert args.invalid_variable == "pagd_digits_invalid"
    assert args.regexp == "\\d+"
    assert args.digit_timeout_ms == 3000


def test_pagd_regexp_is_a_search_as_in_freeswitch() -> None:
    # Then anchored and unanchored patterns behave as PCRE does
    assert media.digits_match("123", "\\d+")
    assert media.digits_match("1", "^[12]$")
    assert not media.digits_match("3", "^[12]$")
    assert media.digits_match("anything", "")
    assert not media.digits_match("1", "([")

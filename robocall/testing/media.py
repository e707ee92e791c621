"""Audio the fake switch pretends to play or record: lengths, file types, WAV files. Pure + files.

Lengths are scripted milliseconds (the switch's time scale turns them into real sleeps):
a WAV file's real length when the path exists, ``silence_stream://N`` is N ms,
``tone_stream://`` sums its ``%(on,off,freq)`` segments times ``loops``, ``tts://`` takes
about 70 ms a character, and anything else
(a missing file, http_cache://) takes ``DEFAULT_PLAY_MS``.
"""

from __future__ import annotations

import re
import shlex
import wave
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PLAY_MS = 1000
TTS_MS_PER_CHAR = 70
_TONE_SEGMENT = re.compile(r"%\((\d+),(\d+),[^)]*\)")
_LOOPS = re.compile(r"loops=(-?\d+)")


def play_length_ms(target: str) -> int:
    """How long playing ``target`` takes, in scripted ms."""
    if target.startswith("silence_stream://"):
        head = target[len("silence_stream://"):].split(",", 1)[0]
        return int(head) if head.isdigit() else DEFAULT_PLAY_MS
    if target.startswith("tone_stream://"):
        segments = _TONE_SEGMENT.findall(target)
        if not segments:
            return DEFAULT_PLAY_MS
        once = sum(int(on) + int(off) for on, off in segments)
        loops = _LOOPS.search(target)
        count = int(loops.group(1)) if loops else 1
        # loops=-1 repeats forever; a long finite stand-in keeps the fake bounded.
        return once * (count if count > 0 else 3600)
    if target.startswith("tts://"):
        # tts://engine|voice|text: flite speaks about 14 characters a second.
        return len(target.split("|", 2)[-1]) * TTS_MS_PER_CHAR
    return wav_length_ms(target) or DEFAULT_PLAY_MS


def wav_length_ms(path: str) -> int | None:
    """A WAV file's length in ms, or None when the path is not a readable WAV file."""
    try:
        with wave.open(path, "rb") as wav:
            return int(wav.getnframes() * 1000 / wav.getframerate())
    except (OSError, EOFError, wave.Error):
        return None


def file_type(target: str) -> str | None:
    """Playback-File-Type: the stream's scheme for tone/silence streams, absent otherwise."""
    for scheme in ("tone_stream", "silence_stream"):
        if target.startswith(scheme + "://"):
            return scheme
    return None


def write_silence_wav(path: str, length_ms: int, rate: int = 8000) -> int:
    """Write a mono 16-bit WAV of silence as record_session does; returns the sample count."""
    samples = rate * max(length_ms, 0) // 1000
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * samples)
    return samples


@dataclass(frozen=True)
class PagdArgs:
    """play_and_get_digits' ten arguments, min digits to digit timeout."""

    min_digits: int
    max_digits: int
    tries: int
    timeout_ms: int
    terminators: str
    prompt: str
    invalid_prompt: str
    variable: str
    regexp: str
    digit_timeout_ms: int

    @property
    def invalid_variable(self) -> str:
        """Where the last invalid input is kept (``<var>_invalid``)."""
        return self.variable + "_invalid"


def parse_pagd(argument: str) -> PagdArgs:
    """Parse play_and_get_digits' argument; quoted prompts may hold spaces."""
    lexer = shlex.shlex(argument, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' is the usual terminator, not a comment
    lexer.escape = ""  # a backslash belongs to the regexp (\d+), as FreeSWITCH reads it
    words = list(lexer)
    if len(words) < 6:
        raise ValueError(f"play_and_get_digits needs at least 6 arguments: {argument!r}")
    words += [""] * (10 - len(words))
    timeout = int(words[3])
    digit_timeout = int(words[9]) if words[9].isdigit() else timeout
    return PagdArgs(
        min_digits=int(words[0]), max_digits=int(words[1]), tries=max(int(words[2]), 1),
        timeout_ms=timeout, terminators="" if words[4] == "none" else words[4],
        prompt=words[5], invalid_prompt=words[6], variable=words[7] or "pagd_result",
        regexp=words[8], digit_timeout_ms=digit_timeout,
    )


def digits_match(digits: str, regexp: str) -> bool:
    """FreeSWITCH's switch_regex_match: PCRE search, an empty pattern matches anything."""
    if not regexp:
        return True
    try:
        return re.search(regexp, digits) is not None
    except re.error:
        return False

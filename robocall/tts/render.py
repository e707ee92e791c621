"""Render a message to a WAV file FreeSWITCH can play: engine (flite / espeak-ng), then sox.

The engine writes its own rate (flite 8 or 16 kHz, espeak-ng 22.05 kHz); sox normalises the
level a little below full scale (resampling overshoots a peak at full scale into clipping), moves
the pitch of voices whose engine cannot, and resamples to 8 or 16 kHz mono 16-bit.

Text never reaches a command line: flite reads it from a file robocall names, espeak-ng from its
standard input, so text starting with ``-`` is only ever spoken. Every subprocess has a timeout.
Under gevent's monkey patching ``subprocess`` is gevent's, so a render waits on its child without
blocking the hub.
"""

from __future__ import annotations

import array
import os
import subprocess
import sys
import tempfile
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

from robocall.errors import TtsError
from robocall.tts.voices import ESPEAK, FLITE, Voice, engine_options, select_voice, sox_pitch_cents

SOX = "sox"
SAMPLE_RATES = (8000, 16000)
DEFAULT_SAMPLE_RATE = 8000
DEFAULT_TIMEOUT_SECONDS = 30.0  # per subprocess; 1000 characters take about 1 s here
HEADROOM_DB = 3  # peak level after normalising, below full scale
SILENCE_PEAK = 64  # 16-bit units; engines write exact zeros for what they cannot say
MAX_ERROR_CHARS = 300  # how much of an engine's stderr goes into an error message


def render(
    text: str,
    lang: str,
    gender: str | None,
    pitch: int,
    rate: int,
    *,
    output: Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Path:
    """Speak ``text`` into a WAV file (mono, 16-bit, ``sample_rate`` Hz) and return its path.

    ``gender`` None is the default voice (``voices.DEFAULT_GENDER``, female). ``output`` is
    written (replaced) when given, else a new temporary file is made. Raises
    TtsError when the language, gender, pitch or rate is unknown, the text is blank or unsayable
    (the engine produced silence), or an engine fails or overruns ``timeout``.
    """
    voice = select_voice(lang, gender)
    return render_voice(
        text, voice, pitch, rate, output=output, sample_rate=sample_rate, timeout=timeout
    )


def render_voice(
    text: str,
    voice: Voice,
    pitch: int,
    rate: int,
    *,
    output: Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Path:
    """As :func:`render`, for a voice already chosen."""
    if not text.strip():
        raise TtsError("nothing to say: the message text is blank")
    if sample_rate not in SAMPLE_RATES:
        raise TtsError(f"sample rate {sample_rate}: expected one of {SAMPLE_RATES}")
    options = engine_options(voice, pitch, rate)
    with tempfile.TemporaryDirectory(prefix="robocall-tts-") as work:
        spoken = Path(work) / "engine.wav"
        if voice.engine == FLITE:
            text_file = Path(work) / "text.txt"
            text_file.write_text(text, encoding="utf-8")
            command = [FLITE, *options, "-f", str(text_file), "-o", str(spoken)]
            _run(command, timeout=timeout)
        else:
            # -b 1: the text is UTF-8 whatever the locale; --stdin: all of it, not line by line.
            command = [ESPEAK, *options, "-b", "1", "-w", str(spoken), "--stdin"]
            _run(command, timeout=timeout, stdin=text.encode("utf-8"))
        if not _holds_sound(spoken):
            # Dead air is worse than an error the flow can report (error_playback): espeak-ng
            # says nothing for text it has no rules for, such as digits in cv, he or tk.
            raise TtsError(f"{voice.engine} voice {voice.name} said nothing for this text")
        made_output = output is None
        if output is None:
            handle, name = tempfile.mkstemp(prefix="robocall-tts-", suffix=".wav")
            os.close(handle)
            output = Path(name)
        command = sox_command(spoken, output, sample_rate, sox_pitch_cents(voice, pitch))
        try:
            _run(command, timeout)
        except TtsError:
            if made_output:
                output.unlink(missing_ok=True)
            raise
    return output


def _holds_sound(wav_path: Path) -> bool:
    """Whether a 16-bit WAV file has any sample above the engines' digital silence."""
    try:
        with wave.open(str(wav_path), "rb") as wav:
            if wav.getsampwidth() != 2:
                return wav.getnframes() > 0
            samples = array.array("h", wav.readframes(wav.getnframes()))
    except (OSError, EOFError, wave.Error):
        return False
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    # any() stops at the first loud sample, a fraction of a second into speech
    return any(abs(sample) > SILENCE_PEAK for sample in samples)


def sox_command(source: Path, target: Path, sample_rate: int, pitch_cents: int) -> list[str]:
    """The sox command line that turns an engine's WAV into the file FreeSWITCH plays."""
    effects = ["gain", "-n", f"-{HEADROOM_DB}"]
    if pitch_cents:
        effects += ["pitch", str(pitch_cents)]
    effects += ["rate", "-h", str(sample_rate)]
    # -R: repeatable dither, so the same message always makes the same bytes
    return [
        SOX, "-R", "-V1", "--no-show-progress", str(source),
        "-t", "wav", "-e", "signed-integer", "-b", "16", "-c", "1", str(target),
        *effects,
    ]  # fmt: skip


class OncePerKey:
    """A value per key, computed by the first caller and shared with every later one.

    ``functools.cache`` is not enough when computing yields: under gevent a subprocess wait
    lets every concurrent first caller in before the first has stored its answer, so 100 calls
    at once spawned 100 ``flite --version``. Here the first caller of a key computes while the
    others wait on that key's lock (``threading``'s, which is gevent's under monkey patching).
    A failure is not stored: the next caller tries again.
    """

    def __init__(self, compute: Callable[[str], str]) -> None:
        self._compute = compute
        self._values: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.computed = 0  # how many times ``compute`` ran (what the tests count)

    def __call__(self, key: str) -> str:
        value = self._values.get(key)
        if value is not None:
            return value
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            value = self._values.get(key)
            if value is None:
                self.computed += 1
                value = self._values[key] = self._compute(key)
        return value

    def cache_clear(self) -> None:
        """Forget every value (tests; a process never needs to)."""
        with self._guard:
            self._values.clear()


def _ask_version(program: str) -> str:
    # flite 2.2 exits 1 after printing its version, so the exit status is not checked.
    completed = _run([program, "--version"], timeout=DEFAULT_TIMEOUT_SECONDS, check=False)
    lines = [line.strip() for line in completed.stdout.decode(errors="replace").splitlines()]
    # flite prints a copyright line first; its version is on the line that says so.
    versioned = [line for line in lines if "version" in line.lower()]
    return (versioned or [line for line in lines if line] or [program])[0]


# The first line ``program --version`` prints (part of every cache key), asked once per process.
engine_version = OncePerKey(_ask_version)


def _run(
    command: list[str], timeout: float, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    program = command[0]
    try:
        # gevent's run refuses `stdin` next to `input` even when it is None
        feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": DEVNULL}
        completed = subprocess.run(
            command, capture_output=True, timeout=timeout, check=False, **feed
        )
    except FileNotFoundError as err:
        raise TtsError(f"{program} is not installed (apt-get install {program})") from err
    except subprocess.TimeoutExpired as err:
        raise TtsError(f"{program} did not finish within {timeout:g} s") from err
    except OSError as err:
        raise TtsError(f"{program} could not be started: {err}") from err
    if check and completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()[-MAX_ERROR_CHARS:]
        raise TtsError(f"{program} failed (exit {completed.returncode}): {detail or 'no message'}")
    return completed

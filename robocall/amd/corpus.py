"""A labelled corpus of answered calls, made here: people who say hello, machines that greet.

Every clip is what the robo leg hears from the answer on, 8 kHz 16-bit mono: a lead-in
silence, then a person's short answer and the silence they leave waiting for a reply, or a
machine's greeting (carrier or personal, several lengths) with or without a beep after it. Each
is spoken by every English flite and espeak-ng voice at several rates, optionally mixed with
background noise, and passed through G.711 u-law (encoded and decoded by sox), as a telephone
line does. Nothing is downloaded; clips are rendered by the same TTS code robocall speaks with,
and each clip's label carries the times a detector is judged against.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robocall.tts.render import render_voice
from robocall.tts.voices import ESPEAK, FLITE, FLITE_VOICES, PitchControl, Voice

SAMPLE_RATE = 8000

HUMAN_PHRASES = {
    "hello": "Hello?",
    "speaking": "Yes, speaking.",
    "who": "Hello, who is this?",
    "alex": "Hello, this is Alex speaking.",
}
MACHINE_GREETINGS = {
    "carrier-short": "The number you have dialled is not available. Please leave a message.",
    "carrier-medium": (
        "The person you are calling is not available right now. Please leave your message "
        "after the tone. When you are finished, simply hang up."
    ),
    "carrier-long": (
        "Welcome to the voice mail service. The subscriber you have called cannot take your call "
        "at the moment. Please leave your name, your number and a short message after the tone, "
        "and you will be called back as soon as possible."
    ),
    "personal-short": "Hi, this is Sam. I can't answer right now, so leave me a message.",
    "personal-medium": (
        "Hi, you've reached Maria. I can't take your call right now, but if you leave your "
        "name and number, I'll get back to you."
    ),
    "personal-long": (
        "Hello, you have reached the voicemail of Alex Tan. I am away from my desk or on another "
        "call. Please leave your name and number after the tone, and I will call you back as "
        "soon as I can. Thank you, and have a great day."
    ),
    # A greeting that opens as a person does ("Hello," and a pause) and then goes on.
    "personal-hello": (
        "Hello, you've reached Sam and Kim. We can't come to the phone right now, so please "
        "leave us a message."
    ),
}
# Greetings as short as a person's answer: what no timing rule tells from one (docs/amd.md).
# Made and measured apart (scripts/bench_amd.py's "limits"), not in the two classes' accuracy.
BRIEF_GREETINGS = {
    "personal-brief": "Sam here. Leave a message.",
}
RATES = (3, 5, 7)
BEEP_HZ = (440, 850, 1000, 1400)
TRAILING_MS = 4000  # what follows the answer or the beep: a person or a machine waiting


def flite_voices() -> list[Voice]:
    """Every flite voice robocall can speak with, and kal16 (flite's 16 kHz kal)."""
    return [*FLITE_VOICES.values(), Voice(FLITE, "kal16", "en", "male", PitchControl.SOX)]


ESPEAK_ENGLISH = (
    "gmw/en", "gmw/en-US", "gmw/en-GB-scotland", "gmw/en-GB-x-gbclan", "gmw/en-GB-x-rp",
    "gmw/en-GB-x-gbcwmd", "gmw/en-029", "gmw/en-US-nyc",
)  # fmt: skip
# espeak-ng's voices are male; its variants make women of some (one variant each, in turn).
ESPEAK_FEMALE_VARIANTS = ("+f1", "+f2", "+f3", "+f4")


def espeak_voices() -> list[Voice]:
    """Every English espeak-ng voice (male), and a female variant of every other one."""
    voices = [Voice(ESPEAK, name, "en", "male", PitchControl.ESPEAK) for name in ESPEAK_ENGLISH]
    for index, name in enumerate(ESPEAK_ENGLISH[::2]):
        variant = ESPEAK_FEMALE_VARIANTS[index % len(ESPEAK_FEMALE_VARIANTS)]
        voices.append(Voice(ESPEAK, name + variant, "en", "female", PitchControl.ESPEAK))
    return voices


def all_voices() -> list[Voice]:
    return flite_voices() + espeak_voices()


@dataclass(frozen=True)
class ClipSpec:
    """One clip to make: who speaks what, how, and what follows."""

    kind: str  # "human" | "machine" | "silent" (picks up and says nothing: line noise only)
    phrase: str  # a key of HUMAN_PHRASES or MACHINE_GREETINGS
    voice: Voice
    rate: int
    beep: bool = False
    noise: bool = False

    @property
    def name(self) -> str:
        voice = self.voice.name.replace("/", "_").replace("+", "_")
        extras = ("-beep" if self.beep else "") + ("-noise" if self.noise else "")
        return f"{self.kind}-{self.phrase}-{self.voice.engine}-{voice}-r{self.rate}{extras}"

    @property
    def text(self) -> str:
        if self.kind in ("human", "silent"):  # a silent line's noise is set by this phrase
            return HUMAN_PHRASES[self.phrase]
        return MACHINE_GREETINGS.get(self.phrase) or BRIEF_GREETINGS[self.phrase]


@dataclass(frozen=True)
class Clip:
    """A made clip and its truth: where speech ends, where the beep is (ms from the answer)."""

    spec: ClipSpec
    pcm: bytes  # 8 kHz int16 little-endian, after G.711
    speech_start_ms: int
    speech_end_ms: int
    beep_ms: tuple[int, int] | None  # (start, end)

    @property
    def greeting_end_ms(self) -> int:
        """Where a message may start: after the beep, or after the greeting's speech."""
        return self.beep_ms[1] if self.beep_ms else self.speech_end_ms


def specs(
    voices: Sequence[Voice] | None = None,
    rates: Sequence[int] = RATES,
    humans: Sequence[str] = tuple(HUMAN_PHRASES),
    machines: Sequence[str] = tuple(MACHINE_GREETINGS),
    noise: Sequence[bool] = (False, True),
) -> Iterator[ClipSpec]:
    """Every combination: each human phrase, each greeting with and without a beep."""
    for voice in voices if voices is not None else all_voices():
        for rate in rates:
            for with_noise in noise:
                for phrase in humans:
                    yield ClipSpec("human", phrase, voice, rate, noise=with_noise)
                for phrase in machines:
                    for beep in (False, True):
                        yield ClipSpec("machine", phrase, voice, rate, beep, with_noise)


class CorpusMaker:
    """Makes clips, rendering each (voice, rate, text) once into ``cache_dir``."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def speech(self, spec: ClipSpec) -> np.ndarray:
        """The phrase as the voice speaks it, 8 kHz, leading and trailing silence trimmed."""
        key = hashlib.sha256(f"{spec.voice}|{spec.rate}|{spec.text}".encode()).hexdigest()[:20]
        path = self.cache_dir / f"tts-{key}.wav"
        if not path.exists():
            render_voice(spec.text, spec.voice, 5, spec.rate, output=path, sample_rate=SAMPLE_RATE)
        return trim(read_wav(path))

    def make(self, spec: ClipSpec) -> Clip:
        """The clip of ``spec``: deterministic (its random choices are seeded by its name)."""
        rng = np.random.default_rng(int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16))
        # A telephone line's speech level varies by tens of dB from one callee to the next.
        speech = self.speech(spec).astype(np.float64) * 10 ** (rng.uniform(-16, -2) / 20)
        # A person's "hello?" comes a moment after the pick-up; a machine's greeting as it may.
        lead_ms = int(rng.uniform(200, 800) if spec.kind == "human" else rng.uniform(100, 900))
        if spec.kind == "silent":  # the level of the words never said sets the noise's
            audio = silence(TRAILING_MS + 2000)
            noise = line_noise(len(audio), speech, rng) if spec.noise else 0.0
            pcm = np.clip(audio + noise, -32768, 32767).astype("<i2").tobytes()
            return Clip(spec, g711(pcm), 0, 0, None)
        parts = [silence(lead_ms), speech]
        speech_start = lead_ms
        speech_end = lead_ms + len(speech) * 1000 // SAMPLE_RATE
        beep = None
        if spec.beep:
            gap_ms = int(rng.uniform(150, 900))
            beep_len = int(rng.uniform(250, 700))
            beep_start = speech_end + gap_ms
            beep = (beep_start, beep_start + beep_len)
            hz = float(rng.choice(BEEP_HZ))
            level = float(rng.uniform(3000, 12000))
            parts += [silence(gap_ms), tone(hz, beep_len, amplitude=level)]
        parts.append(silence(TRAILING_MS))
        audio = np.concatenate(parts)
        if spec.noise:
            audio = audio + line_noise(len(audio), speech, rng)
        pcm = np.clip(audio, -32768, 32767).astype("<i2").tobytes()
        return Clip(spec, g711(pcm), speech_start, speech_end, beep)


def shutil_which(program: str) -> str | None:
    """Where ``program`` is on the PATH (the corpus needs flite, espeak-ng and sox)."""
    return shutil.which(program)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 8 kHz 16-bit")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def write_wav(path: Path, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)


def trim(samples: np.ndarray, floor: int = 64) -> np.ndarray:
    """``samples`` without the engine's leading and trailing digital silence."""
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > floor)[0]
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples[:0]


def silence(ms: int) -> np.ndarray:
    return np.zeros(SAMPLE_RATE * ms // 1000)


def tone(hz: float, ms: int, amplitude: float = 8000.0) -> np.ndarray:
    """A sine beep with 5 ms ramps (as voicemail systems play it, no click)."""
    t = np.arange(SAMPLE_RATE * ms // 1000) / SAMPLE_RATE
    wave_ = amplitude * np.sin(2 * np.pi * hz * t)
    ramp = min(len(t) // 2, SAMPLE_RATE * 5 // 1000)
    if ramp:
        wave_[:ramp] *= np.linspace(0, 1, ramp)
        wave_[-ramp:] *= np.linspace(1, 0, ramp)
    return wave_


def line_noise(length: int, speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Background noise 12-25 dB below the speech: hiss, a low rumble and a little mains hum."""
    speech_rms = float(np.sqrt(np.mean(speech**2))) if len(speech) else 1000.0
    snr_db = rng.uniform(12, 25)
    white = rng.standard_normal(length)
    rumble = np.cumsum(rng.standard_normal(length))
    rumble -= np.convolve(rumble, np.ones(400) / 400, mode="same")  # brown noise, no drift
    rumble /= max(float(np.std(rumble)), 1e-9)
    hum = np.sin(2 * np.pi * 50 * np.arange(length) / SAMPLE_RATE) * 0.3
    noise = white + rumble + hum
    noise *= speech_rms / 10 ** (snr_db / 20) / max(float(np.std(noise)), 1e-9)
    return noise


def g711(pcm: bytes) -> bytes:
    """16-bit PCM through a G.711 u-law line: encoded by sox, decoded by sox."""
    # -D: no dither, as a G.711 codec has none (and the clip is the same bytes every time)
    sox = ["sox", "-V1", "-D"]
    raw = ["-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1"]
    linear = ["-e", "signed-integer", "-b", "16"]
    encoded = subprocess.run(
        [*sox, *raw, *linear, "-", *raw, "-e", "u-law", "-"],
        input=pcm, capture_output=True, check=True, timeout=60,
    ).stdout
    return subprocess.run(
        [*sox, *raw, "-e", "u-law", "-", *raw, *linear, "-"],
        input=encoded, capture_output=True, check=True, timeout=60,
    ).stdout

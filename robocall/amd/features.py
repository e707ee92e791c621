"""What the decision rules see of each 20 ms frame: speech or not, and a steady tone or not.

Speech comes from the WebRTC voice-activity detector (``webrtcvad-wheels``, the maintained
build of py-webrtcvad: Google's GMM-based VAD in C, made for 8 kHz telephone audio, no model
weights to fetch, a few microseconds a frame). Telephone beeps are what it gets wrong: a pure
tone is "speech" to it. So a tone detector looks at each frame first: a frame whose energy sits
in one narrow band (a Goertzel-style single-bin measure, found with one real FFT) is a tone,
not speech. Both are pure functions of the frame's samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

FRAME_MS = 20
SAMPLE_RATES = (8000, 16000)
# WebRTC VAD mode 0 (least) .. 3 (most aggressive at calling noise "not speech"). 2: mode 3
# also cuts the short dips inside running speech into "pauses", so a greeting's sentence looks
# like a person's answer followed by silence; mode 2 keeps them speech and still calls the
# corpus's line noise (hiss, rumble, hum 12-25 dB below the speech) silence. The corpus
# (docs/amd.md) measured modes 1-3.
VAD_MODE = 2
# A tone: this share of the frame's power within TONE_BAND_HZ of its strongest frequency.
TONE_PURITY = 0.85
TONE_BAND_HZ = 60.0
TONE_MIN_HZ = 300.0
TONE_MAX_HZ = 3400.0
# Below this RMS (16-bit units, about -50 dBFS) a frame is silence, whatever its shape.
TONE_MIN_RMS = 100.0
FFT_PAD = 2  # zero-pad the frame to twice its length: 25 Hz bins at 8 kHz


@dataclass(frozen=True)
class FrameFeatures:
    """One frame as the rules see it. ``tone_hz``: the tone's frequency, or None."""

    speech: bool
    tone_hz: float | None = None


def frame_bytes(sample_rate: int) -> int:
    """Bytes of one 20 ms frame of 16-bit mono PCM."""
    return sample_rate * FRAME_MS // 1000 * 2


def tone_frequency(samples: np.ndarray, sample_rate: int) -> float | None:
    """The frequency of a steady tone filling the frame, or None (speech, noise, silence)."""
    x = samples.astype(np.float64)
    if float(np.sqrt(np.mean(x * x))) < TONE_MIN_RMS:
        return None
    size = len(x) * FFT_PAD
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=size)) ** 2
    total = float(power.sum())
    if total <= 0.0:
        return None
    bin_hz = sample_rate / size
    low, high = int(TONE_MIN_HZ / bin_hz), int(TONE_MAX_HZ / bin_hz)
    peak = low + int(np.argmax(power[low:high]))
    half = max(1, int(TONE_BAND_HZ / bin_hz))
    band = float(power[max(peak - half, 0) : peak + half + 1].sum())
    return peak * bin_hz if band / total >= TONE_PURITY else None


class FrameAnalyzer:
    """Features of successive frames of one call (the VAD keeps a little state per stream)."""

    def __init__(self, sample_rate: int = 8000, vad_mode: int = VAD_MODE) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample rate {sample_rate}: expected one of {SAMPLE_RATES}")
        self.sample_rate = sample_rate
        self.frame_bytes = frame_bytes(sample_rate)
        self._vad = webrtcvad.Vad(vad_mode)

    def analyze(self, frame: bytes) -> FrameFeatures:
        """Features of one frame of exactly :attr:`frame_bytes` bytes (little-endian int16)."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame of {len(frame)} bytes: expected {self.frame_bytes}")
        tone = tone_frequency(np.frombuffer(frame, dtype="<i2"), self.sample_rate)
        if tone is not None:
            return FrameFeatures(speech=False, tone_hz=tone)
        return FrameFeatures(speech=self._vad.is_speech(frame, self.sample_rate))

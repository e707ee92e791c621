"""Measure WAV files the way a listener would notice: format, loudness, length, voice pitch."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAME_SECONDS = 0.05  # long enough to hold two periods of a 50 Hz voice
HOP_SECONDS = 0.01
LOWEST_F0_HZ = 50.0
HIGHEST_F0_HZ = 400.0
LOUD_FRAME_SHARE_OF_PEAK = 0.25  # frames quieter than this share of the loudest are skipped
VOICED_CORRELATION = 0.5  # normalised autocorrelation a periodic (voiced) frame reaches


@dataclass(frozen=True)
class Wav:
    """A WAV file's header facts and its samples (first channel, as float)."""

    sample_rate: int
    channels: int
    sample_width_bytes: int
    samples: np.ndarray

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def rms(self) -> float:
        """Root-mean-square level in 16-bit units (silence is 0)."""
        return float(np.sqrt(np.mean(self.samples**2))) if len(self.samples) else 0.0

    @property
    def peak(self) -> float:
        return float(np.abs(self.samples).max()) if len(self.samples) else 0.0


def read_wav(path: Path) -> Wav:
    """Read a PCM WAV file (raises wave.Error when it is not one)."""
    with wave.open(str(path), "rb") as wav:
        channels = wav.getnchannels()
        width = wav.getsampwidth()
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    if width != 2:
        return Wav(rate, channels, width, np.zeros(0))
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)[::channels]
    return Wav(rate, channels, width, samples)


def median_f0_hz(wav: Wav) -> float:
    """The median fundamental frequency over voiced frames (autocorrelation), 0 if none.

    A frame counts as voiced when it is loud (against the file's loudest frame) and periodic
    (its normalised autocorrelation peaks above VOICED_CORRELATION within 50-400 Hz).
    """
    estimates = voiced_f0_estimates(wav)
    return float(np.median(estimates)) if estimates else 0.0


def voiced_f0_estimates(wav: Wav) -> list[float]:
    """One f0 estimate (Hz) per voiced frame."""
    rate = wav.sample_rate
    frame_length = int(FRAME_SECONDS * rate)
    hop = int(HOP_SECONDS * rate)
    shortest_lag = int(rate / HIGHEST_F0_HZ)
    longest_lag = int(rate / LOWEST_F0_HZ)
    starts = range(0, len(wav.samples) - frame_length, hop)
    frames = [wav.samples[start : start + frame_length] for start in starts]
    if not frames:
        return []
    levels = np.array([np.sqrt(np.mean(frame**2)) for frame in frames])
    loud_enough = LOUD_FRAME_SHARE_OF_PEAK * levels.max()
    estimates = []
    for frame, level in zip(frames, levels, strict=True):
        if level < loud_enough:
            continue
        centred = frame - frame.mean()
        correlation = np.correlate(centred, centred, "full")[frame_length - 1 :]
        if correlation[0] <= 0:
            continue
        correlation = correlation / correlation[0]
        lag = shortest_lag + int(np.argmax(correlation[shortest_lag : longest_lag + 1]))
        if correlation[lag] >= VOICED_CORRELATION:
            estimates.append(rate / lag)
    return estimates

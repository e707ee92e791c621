"""A message made of separately rendered pieces, joined into one WAV file with natural pauses.

A personalised message ("Dear {{name}}, your parcel arrives tomorrow") is the same text around
the placeholders for every destination. Rendering it whole costs an engine run over the whole
text per destination (~100 ms of CPU for a sentence with flite's slt voice here); rendering the
shared text once and only the destination's values per call costs the values alone. The
pieces are joined here, in Python, which for 8 or 16 kHz 16-bit mono PCM is a copy of a few
hundred kilobytes at most.

Each engine run pads its audio with ~150-200 ms of silence at both ends (measured for flite
slt, rms and espeak-ng), which would put a sentence's pause between "Dear" and the name. So
every piece is trimmed to its speech (keeping a short margin for soft onsets such as "f" or
"th"), and the pause at each joint is chosen from the punctuation there, as a speaker would:
none written -> a word gap, a comma -> a clause pause, a full stop -> a sentence pause.

Pure functions over text and bytes, plus :func:`join_wavs`, which reads and writes files.
"""

from __future__ import annotations

import array
import sys
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Pauses at a joint, by what is written there (ms). Measured against whole-message renders of
# flite slt: its pause at a comma is ~200 ms, at a full stop ~350 ms, between words ~0-60 ms.
WORD_GAP_MS = 50
CLAUSE_PAUSE_MS = 200
SENTENCE_PAUSE_MS = 350
# Silence kept before the first word and after the last one (the whole message's edges).
LEAD_MS = 40
TAIL_MS = 150
# Trimming: a sample counts as speech above this level (16-bit units: 2 % of the peak every
# rendered file is normalised to, 3 dB below full scale), and this much is kept before and after
# the speech so a soft onset or decay is not cut. A fixed level spares a scan of every sample.
SPEECH_LEVEL = 460
TRIM_MARGIN_MS = 15
TRIM_SCAN_STEP = 64  # samples looked at in one block while trimming

SENTENCE_MARKS = frozenset(".!?。！？…")
CLAUSE_MARKS = frozenset(",;:、，；：—–-()")


@dataclass(frozen=True)
class Piece:
    """One spoken run of a message: its text, and the pause before it (ms; 0 for the first)."""

    text: str
    pause_before_ms: int


def speakable(text: str) -> bool:
    """Whether ``text`` has anything to say (a letter or digit of any script)."""
    return any(character.isalnum() for character in text)


def split_pieces(runs: Sequence[str]) -> list[Piece]:
    """The spoken pieces of a message written as ``runs`` (literal text and filled-in values,
    in order), each with the pause that the text between it and the piece before calls for.

    A run with nothing to say (", " between two placeholders, a blank value) is no piece of its
    own: its punctuation sets the pause at the joint instead.
    """
    pieces: list[Piece] = []
    between = ""  # what is written since the last spoken character
    for run in runs:
        if not speakable(run):
            between += run
            continue
        first = next(index for index, character in enumerate(run) if character.isalnum())
        last = max(index for index, character in enumerate(run) if character.isalnum())
        if pieces:
            pause = pause_for(between + run[:first])
            pieces.append(Piece(run.strip(), pause))
        else:
            pieces.append(Piece(run.strip(), 0))
        between = run[last + 1 :]
    return pieces


def pause_for(written: str) -> int:
    """The pause (ms) for what is written at a joint between two spoken pieces."""
    if any(character in SENTENCE_MARKS for character in written):
        return SENTENCE_PAUSE_MS
    if any(character in CLAUSE_MARKS for character in written):
        return CLAUSE_PAUSE_MS
    return WORD_GAP_MS


def trim_to_speech(samples: array.array[int], sample_rate: int) -> array.array[int]:
    """``samples`` without the silence before and after the speech (a short margin kept)."""
    if not samples:
        return samples
    threshold = SPEECH_LEVEL
    start = _first_loud(samples, threshold, range(0, len(samples), TRIM_SCAN_STEP))
    if start is None:
        return samples[:0]
    backwards = range(len(samples) - 1, start - 1, -TRIM_SCAN_STEP)
    end = _first_loud(samples, threshold, backwards, step=-1)
    margin = sample_rate * TRIM_MARGIN_MS // 1000
    return samples[max(0, start - margin) : min(len(samples), (end or start) + 1 + margin)]


def _first_loud(
    samples: array.array[int], threshold: float, blocks: range, step: int = 1
) -> int | None:
    """The index of the first sample louder than ``threshold``, looking block by block from
    each start in ``blocks`` in direction ``step`` (max/min of a slice run at C speed, so
    ~200 ms of leading silence costs a few dozen comparisons, not thousands)."""
    for block_start in blocks:
        if step > 0:
            block = samples[block_start : block_start + TRIM_SCAN_STEP]
        else:
            block = samples[max(0, block_start - TRIM_SCAN_STEP + 1) : block_start + 1]
        if max(block) > threshold or -min(block) > threshold:
            indices = range(len(block)) if step > 0 else range(len(block) - 1, -1, -1)
            offset = block_start if step > 0 else block_start - len(block) + 1
            for index in indices:
                if abs(block[index]) > threshold:
                    return offset + index
    return None


def silence(sample_rate: int, milliseconds: int) -> array.array[int]:
    """Digital silence of ``milliseconds`` at ``sample_rate``."""
    return array.array("h", bytes(2 * (sample_rate * milliseconds // 1000)))


def read_pcm(path: Path) -> tuple[array.array[int], int]:
    """A 16-bit mono WAV file's samples and its sample rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        rate = wav.getframerate()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    return samples, rate


def read_trimmed(path: Path) -> tuple[array.array[int], int]:
    """A 16-bit mono WAV file's samples trimmed to its speech, and its sample rate."""
    samples, rate = read_pcm(path)
    return trim_to_speech(samples, rate), rate


def join_wavs(
    paths: Sequence[Path],
    pauses_ms: Sequence[int],
    output: Path,
    read: Callable[[Path], tuple[array.array[int], int]] = read_trimmed,
) -> None:
    """Write ``output``: each file trimmed to its speech, ``pauses_ms[i]`` of silence before
    file ``i`` (``pauses_ms[0]`` is ignored), the message's own lead and tail at the edges.

    ``read`` gives a file's trimmed samples (:func:`read_trimmed`; a cache that joins the
    same shared pieces for every destination passes one that remembers them). Every file must
    have the same sample rate (a cache renders all its files at one rate).
    """
    if not paths or len(paths) != len(pauses_ms):
        raise ValueError("join_wavs needs one pause per file, and at least one file")
    joined = array.array("h")
    rate = 0
    for index, (path, pause_ms) in enumerate(zip(paths, pauses_ms, strict=True)):
        samples, file_rate = read(path)
        if rate and file_rate != rate:
            raise ValueError(f"{path}: {file_rate} Hz among {rate} Hz pieces")
        rate = file_rate
        silence_ms = LEAD_MS if index == 0 else pause_ms
        joined.extend(silence(rate, silence_ms))
        joined.extend(samples)
    joined.extend(silence(rate, TAIL_MS))
    if sys.byteorder == "big":
        joined.byteswap()
    with wave.open(str(output), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(joined.tobytes())

"""How much could deciding DURING a person's speech give? A bound, not a detector.

Run by hand from the repository root (``python scripts/amd_speech_bound.py``, ~3 min); prints
one JSON object. docs/amd.md ("The person's verdict goal") quotes it.

1. ``openings``: how long a person's answer sounds exactly like a greeting that opens the same
   way ("Hello, who is this?" against "Hello, you've reached Sam and Kim. ..."): the length of
   the TTS waveforms' common start, every 50 ms window correlating at least 0.9 (the corpus
   varies the level anyway).
2. ``learned``: a score fitted on the tuning voices (logistic regression with squared terms
   over 14 features of the audio so far: utterances, pauses, silence so far, share of speech,
   energy spread, pitch, voicing) and asked once at ``at_ms``, before the rules decide; its
   threshold lets through ``machine_share`` of the tuning voices' machines. Reported with the
   rules around it, on the tuning and held-out voices: what the best early "human" could buy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_amd import TUNING_VOICES, percentile  # noqa: E402

from robocall.amd import corpus  # noqa: E402
from robocall.amd.classifier import Classifier  # noqa: E402
from robocall.amd.features import FRAME_MS, FrameAnalyzer, FrameFeatures  # noqa: E402

FRAME = corpus.SAMPLE_RATE * FRAME_MS // 1000
PAUSE_FRAMES = 3  # a pause inside an utterance: 60 ms or more of non-speech


def frame_track(clip: corpus.Clip) -> dict[str, np.ndarray]:
    """Per 20 ms frame: the VAD's speech, the tone, the level, a pitch and its voicing."""
    analyzer = FrameAnalyzer(corpus.SAMPLE_RATE)
    pcm = np.frombuffer(clip.pcm, dtype="<i2")
    count = len(pcm) // FRAME
    track = {key: np.zeros(count) for key in ("speech", "tone", "rms", "f0", "voicing")}
    previous = np.zeros(FRAME)
    for index in range(count):
        samples = pcm[index * FRAME : (index + 1) * FRAME]
        found = analyzer.analyze(samples.tobytes())
        track["speech"][index] = found.speech
        track["tone"][index] = found.tone_hz or 0.0
        x = samples.astype(np.float64)
        track["rms"][index] = float(np.sqrt(np.mean(x * x)))
        window = np.concatenate([previous, x])
        window -= window.mean()
        correlation = np.correlate(window, window, mode="full")[len(window) - 1 :]
        if correlation[0] > 0:
            lags = correlation[20:120] / correlation[0]  # 400 down to 67 Hz
            best = int(np.argmax(lags))
            track["f0"][index] = corpus.SAMPLE_RATE / (20 + best)
            track["voicing"][index] = lags[best]
        previous = x
    return track


def utterances(speech: np.ndarray) -> list[tuple[int, int]]:
    """(first, past-last) frames of each run of speech, runs closer than a pause merged."""
    runs: list[tuple[int, int]] = []
    index = 0
    while index < len(speech):
        if speech[index]:
            end = index
            while end < len(speech) and speech[end]:
                end += 1
            if runs and index - runs[-1][1] < PAUSE_FRAMES:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((index, end))
            index = end
        else:
            index += 1
    return runs


def prefix_features(track: dict[str, np.ndarray], at_ms: int) -> list[float] | None:
    """What the audio up to ``at_ms`` shows; None before anyone spoke."""
    frames = at_ms // FRAME_MS
    speech = track["speech"][:frames] > 0
    spoken = np.nonzero(speech)[0]
    if not len(spoken):
        return None
    runs = utterances(speech)
    lengths = [(end - start) * FRAME_MS for start, end in runs]
    pauses = [(runs[k + 1][0] - runs[k][1]) * FRAME_MS for k in range(len(runs) - 1)]
    since = spoken[0]
    level = np.log10(np.median(track["rms"][:frames][speech]) + 1)
    energy = np.log10(track["rms"][since:frames] + 1) - level
    voiced = (track["voicing"][since:frames] > 0.5) & speech[since:]
    pitch = track["f0"][since:frames][voiced]
    return [
        since * FRAME_MS, at_ms - since * FRAME_MS, len(runs), lengths[0], lengths[-1],
        sum(lengths), pauses[0] if pauses else 0, max(pauses, default=0),
        (frames - spoken[-1] - 1) * FRAME_MS, float(np.mean(speech[since:])),
        float(np.std(energy)), float(np.median(pitch)) if len(pitch) else 0.0,
        float(np.std(np.log(pitch))) if len(pitch) > 3 else 0.0, float(np.mean(voiced)),
    ]  # fmt: skip


def fit(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Logistic regression with squared terms, by gradient descent: P(person | features)."""
    mean, spread = x.mean(0), x.std(0) + 1e-9

    def expand(rows: np.ndarray) -> np.ndarray:
        z = (rows - mean) / spread
        return np.hstack([z, z * z])

    z = expand(x)
    weights, bias = np.zeros(z.shape[1]), 0.0
    for _ in range(3000):
        error = 1 / (1 + np.exp(-(z @ weights + bias))) - y
        weights -= 0.1 * (z.T @ error / len(y) + 1e-3 * weights)
        bias -= 0.1 * float(error.mean())
    return lambda rows: 1 / (1 + np.exp(-(expand(rows) @ weights + bias)))


def rules_verdict(track: dict[str, np.ndarray]) -> tuple[str, int | None]:
    classifier = Classifier()
    for speech, tone in zip(track["speech"], track["tone"], strict=True):
        classifier.feed(FrameFeatures(bool(speech), float(tone) or None))
        if classifier.verdict is not None:
            return classifier.verdict.answered_by.value, classifier.verdict.at_ms
    return "none", None


def learned(clips: list[dict[str, Any]], at_ms: int, machine_share: float) -> dict[str, Any]:
    rows = [(clip, prefix_features(clip["track"], at_ms)) for clip in clips]
    rows = [(clip, features) for clip, features in rows if features is not None]
    tuning = [(c, f) for c, f in rows if c["voice"] in TUNING_VOICES]
    x = np.array([f for _, f in tuning])
    y = np.array([c["kind"] == "human" for c, _ in tuning], dtype=float)
    score = fit(x, y)
    machines = np.sort(score(x)[y == 0])
    threshold = machines[int(len(machines) * (1 - machine_share))]
    early = {c["name"] for c, f in rows if score(np.array([f]))[0] > threshold}
    report: dict[str, Any] = {"at_ms": at_ms, "machine_share": machine_share}
    for name, keep in (("tuning", True), ("held_out", False)):
        right: dict[str, list[int]] = {"human": [], "machine": []}
        total = {"human": 0, "machine": 0}
        for clip in clips:
            if (clip["voice"] in TUNING_VOICES) is not keep:
                continue
            verdict, at = clip["rules"]
            if (at is None or at > at_ms) and clip["name"] in early:
                verdict, at = "human", at_ms
            total[clip["kind"]] += 1
            if verdict == clip["kind"] and at is not None:
                right[clip["kind"]].append(at)
        report[name] = {
            kind: {
                "accuracy": round(len(right[kind]) / max(total[kind], 1), 4),
                "p50": percentile([float(t) for t in right[kind]], 0.5),
                "p95": percentile([float(t) for t in right[kind]], 0.95),
            }
            for kind in ("human", "machine")
        }
    return report


def alike_ms(a: np.ndarray, b: np.ndarray, window: int = 400) -> int:
    """How long two waveforms start alike: every 50 ms window correlating >= 0.9."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    size = min(len(a), len(b))
    for start in range(0, size - window, window):
        x, y = a[start : start + window], b[start : start + window]
        if np.std(x) < 30 and np.std(y) < 30:
            continue  # silent in both: alike
        if min(np.std(x), np.std(y)) < 1e-9 or np.corrcoef(x, y)[0, 1] < 0.9:
            return start * 1000 // corpus.SAMPLE_RATE
    return size * 1000 // corpus.SAMPLE_RATE


def openings(maker: corpus.CorpusMaker) -> dict[str, Any]:
    pairs = (("who", "personal-hello"), ("alex", "personal-hello"), ("alex", "personal-long"))
    report: dict[str, Any] = {}
    for engine in (corpus.FLITE, corpus.ESPEAK):
        for human, machine in pairs:
            alike = [
                alike_ms(maker.speech(corpus.ClipSpec("human", human, voice, rate)),
                         maker.speech(corpus.ClipSpec("machine", machine, voice, rate)))
                for voice in corpus.all_voices() if voice.engine == engine
                for rate in corpus.RATES
            ]  # fmt: skip
            report[f"{engine} {human}/{machine}"] = {
                "alike_ms_p50": percentile([float(ms) for ms in alike], 0.5),
                "alike_ms_max": max(alike),
            }
    return report


def main() -> None:
    maker = corpus.CorpusMaker(Path(".cache/amd-corpus"))
    clips = []
    for spec in corpus.specs():
        track = frame_track(maker.make(spec))
        clips.append({"name": spec.name, "kind": spec.kind, "voice": spec.voice.name,
                      "track": track, "rules": rules_verdict(track)})
    report = {
        "openings": openings(maker),
        "learned": [learned(clips, at_ms, share)
                    for at_ms, share in ((1500, 0.02), (1500, 0.04), (2200, 0.04), (2500, 0.04))],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

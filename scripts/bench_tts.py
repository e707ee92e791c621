"""Benchmark text to speech: render time per engine and length, cache hits, renders per second.

Run by hand from the repository root (``python scripts/bench_tts.py``); prints one JSON object.
Times are wall-clock milliseconds on whatever else the machine is doing, so compare runs on the
same machine only.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after patching, as in robocall's entry point
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent.pool  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robocall.tts.cache import TtsCache  # noqa: E402
from robocall.tts.flite_lib import WorkerRenderer  # noqa: E402
from robocall.tts.render import render, render_voice, sox_command  # noqa: E402
from robocall.tts.voices import select_voice  # noqa: E402

SENTENCES = {
    "en": "Hello, this is a reminder from your clinic: your appointment is tomorrow at ten. ",
    "vi": "Xin chào, đây là lời nhắc từ phòng khám: cuộc hẹn của bạn vào mười giờ sáng mai. ",
}
# (label, lang, gender): flite female (native pitch), flite male (rms: pitch through sox),
# espeak-ng female variant.
VOICES = [
    ("flite-slt", "en", "female"),
    ("flite-rms", "en", "male"),
    ("espeak-ng-vi", "vi", "female"),
]


def message(lang: str, length: int, serial: int) -> str:
    """A message of exactly ``length`` characters, different for each ``serial``."""
    text = f"{serial}. " + SENTENCES[lang] * (length // len(SENTENCES[lang]) + 1)
    return text[:length]


def summary(milliseconds: list[float]) -> dict[str, float]:
    ordered = sorted(milliseconds)
    p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[p99_index], 2),
        "samples": len(ordered),
    }


def timed_ms(action: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


def bench_render(work: Path, samples: int, pitch: int) -> dict[str, dict[str, float]]:
    results = {}
    for label, lang, gender in VOICES:
        for length in (100, 1000):
            times = [
                timed_ms(
                    render,
                    message(lang, length, serial),
                    lang,
                    gender,
                    pitch,
                    5,
                    output=work / "bench.wav",
                )  # fmt: skip
                for serial in range(samples)
            ]
            results[f"{label}_{length}_chars"] = summary(times)
    return results


def bench_sox_step(work: Path, samples: int) -> dict[str, dict[str, float]]:
    """sox alone (normalise + resample to 8 kHz) on a 1000-character message's engine output."""
    results = {}
    for label, lang, gender in VOICES[::2]:
        source = render_voice(
            message(lang, 1000, 0), select_voice(lang, gender), 5, 5,
            output=work / "source.wav", sample_rate=16000,
        )  # fmt: skip
        command = sox_command(source, work / "out.wav", 8000, 0)
        times = [timed_ms(subprocess.run, command, check=True, timeout=30) for _ in range(samples)]
        results[f"{label}_1000_chars"] = summary(times)
    return results


def bench_cache_hit(work: Path, samples: int) -> dict[str, float]:
    cache = TtsCache(work / "hits")
    text = message("en", 100, 0)
    cache.get_or_render(text, "en", "female", 5, 5)
    times = [timed_ms(cache.get_or_render, text, "en", "female", 5, 5) for _ in range(samples)]
    return summary(times)


def bench_throughput(
    work: Path, messages: int, workers: int, flite_workers: bool = False
) -> dict[str, float]:
    renderer = WorkerRenderer() if flite_workers else render_voice
    directory = work / f"throughput-{workers}-{'lib' if flite_workers else 'programs'}"
    cache = TtsCache(directory, max_concurrent=workers, renderer=renderer)
    pool = gevent.pool.Pool(workers * 4)  # more callers than slots: the cache's limit governs
    jobs = [(message(lang, 100, serial), lang, gender) for serial in range(messages)
            for _, lang, gender in VOICES]  # fmt: skip
    started = time.perf_counter()
    for text, lang, gender in jobs:
        pool.spawn(cache.get_or_render, text, lang, gender, 5, 5)
    pool.join(raise_error=True)
    elapsed = time.perf_counter() - started
    cache.close()
    return {
        "renders": cache.renders,
        "seconds": round(elapsed, 2),
        "renders_per_s": round(cache.renders / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=30, help="renders per measured case")
    parser.add_argument("--messages", type=int, default=30, help="per voice, for throughput")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tts-") as directory:
        work = Path(directory)
        render_voice("warm up", select_voice("en", "female"), 5, 5, output=work / "w.wav")
        report = {
            "render_natural_pitch": bench_render(work, arguments.samples, pitch=5),
            "render_pitch_7": bench_render(work, max(5, arguments.samples // 3), pitch=7),
            "sox_step": bench_sox_step(work, arguments.samples),
            "cache_hit": bench_cache_hit(work, arguments.samples * 10),
            "throughput_100_chars": {
                f"{workers}_workers": bench_throughput(work, arguments.messages, workers)
                for workers in (1, 2)
            },
            # flite voices in worker processes (what robocall serve uses), espeak-ng as before
            "throughput_100_chars_flite_workers": {
                f"{workers}_workers": bench_throughput(work, arguments.messages, workers, True)
                for workers in (1, 2)
            },
        }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

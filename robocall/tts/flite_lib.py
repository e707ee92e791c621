"""flite as a library, in worker processes that keep their voices loaded.

Per personalised call the engine speaks a name or two. Run as the ``flite`` program with sox
after it, that cost ~50 ms of CPU here (41 ms in the two programs, 7 ms starting them from a
large Python process), of which the synthesis itself is ~19 ms: the rest is starting processes
and loading the voice for a second of audio. A worker (``python -m robocall.tts.flite_lib``)
loads libflite once and renders request after request: it reads one JSON line (text, voice,
settings, output path, sample rate), synthesises exactly as the program does (the same samples:
the same settings, and the C library's random generator seeded as a fresh program's is),
resamples with flite's own resampler, normalises as the sox step does (the peak 3 dB below full
scale) and writes the WAV file, then answers one JSON line.

Only what flite itself can do goes to a worker: flite voices whose pitch flite moves (every
voice but rms off its natural pitch, which needs sox's pitch effect). The rest, and every
espeak-ng voice, is rendered by :func:`robocall.tts.render.render_voice`. A worker's files are
not byte-identical to the sox path's (another resampler), so a cache keys them under the
worker's own recipe (:attr:`WorkerRenderer.recipe`).

A worker that overruns the timeout is killed, and the next render starts a new one.
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import IO, Any

from robocall.errors import TtsError
from robocall.tts.render import (
    DEFAULT_SAMPLE_RATE,
    DEFAULT_TIMEOUT_SECONDS,
    HEADROOM_DB,
    SILENCE_PEAK,
    render_voice,
)
from robocall.tts.voices import FLITE, Voice, engine_options, sox_pitch_cents

# Bump when the worker's way of making audio changes (part of every key it renders under).
WORKER_RECIPE = "libflite-1"
LIBRARIES = ("libflite.so.1", "libflite_cmulex.so.1", "libflite_usenglish.so.1")
VOICE_LIBRARIES = {
    "slt": ("libflite_cmu_us_slt.so.1", "register_cmu_us_slt"),
    "rms": ("libflite_cmu_us_rms.so.1", "register_cmu_us_rms"),
    "awb": ("libflite_cmu_us_awb.so.1", "register_cmu_us_awb"),
    "kal": ("libflite_cmu_us_kal.so.1", "register_cmu_us_kal"),
}
FULL_SCALE = 32767
WORKER_NICENESS = 10
UNITY = 65536  # cst_wave_rescale's factor for 1.0


# --- the worker's side: libflite through ctypes ---------------------------------------------


class _Wave(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("features", ctypes.c_void_p),
        ("ffunctions", ctypes.c_void_p),
        ("utt_init", ctypes.c_void_p),
    ]


class Flite:
    """libflite loaded in this process, its voices registered as they are first asked for."""

    def __init__(self) -> None:
        loaded = [ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL) for name in LIBRARIES]
        lib = self._lib = loaded[0]
        lib.flite_init()
        lib.flite_text_to_wave.restype = ctypes.POINTER(_Wave)
        lib.flite_text_to_wave.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Voice)]
        lib.feat_set_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]
        lib.feat_remove.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.cst_wave_resample.argtypes = [ctypes.POINTER(_Wave), ctypes.c_int]
        lib.cst_wave_rescale.argtypes = [ctypes.POINTER(_Wave), ctypes.c_int]
        lib.delete_wave.argtypes = [ctypes.POINTER(_Wave)]
        self._libc = ctypes.CDLL(None)
        self._voices: dict[str, Any] = {}
        # flite keeps a feature's name pointer, not a copy: the names must outlive the call.
        self._names: dict[str, bytes] = {}

    def voice(self, name: str) -> Any:
        """The registered voice ``name`` (slt, rms, awb, kal)."""
        if name not in self._voices:
            library, register = VOICE_LIBRARIES[name]
            function = getattr(ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL), register)
            function.restype = ctypes.POINTER(_Voice)
            self._voices[name] = function(None)
        return self._voices[name]

    def speak(
        self, text: str, voice_name: str, settings: dict[str, float], sample_rate: int
    ) -> array.array[int]:
        """``text`` as 16-bit mono samples at ``sample_rate``, normalised as the sox step does."""
        voice = self.voice(voice_name)
        features = voice.contents.features
        names = [self._names.setdefault(name, name.encode()) for name in settings]
        for name, value in zip(names, settings.values(), strict=True):
            self._lib.feat_set_float(features, name, value)
        # The clustergen voices' excitation draws on rand(): seeded as a fresh program's, the
        # samples are the flite program's own, whatever this worker rendered before.
        self._libc.srand(1)
        try:
            made = self._lib.flite_text_to_wave(text.encode("utf-8"), voice)
        finally:
            for name in names:
                self._lib.feat_remove(features, name)
        try:
            # flite's resampler flushes ~250 ms of filter tail after the speech; the length
            # the program + sox path gives is kept (what is cut is silence).
            length = made.contents.num_samples * sample_rate // made.contents.sample_rate
            if made.contents.sample_rate != sample_rate:
                self._lib.cst_wave_resample(made, sample_rate)
            made.contents.num_samples = min(made.contents.num_samples, length)
            samples = self._samples(made)
            peak = max(max(samples), -min(samples)) if samples else 0
            if peak > SILENCE_PEAK:
                target = FULL_SCALE * 10 ** (-HEADROOM_DB / 20)
                self._lib.cst_wave_rescale(made, int(UNITY * target / peak))
                samples = self._samples(made)
            return samples
        finally:
            self._lib.delete_wave(made)

    @staticmethod
    def _samples(made: Any) -> array.array[int]:
        count = made.contents.num_samples * made.contents.num_channels
        return array.array("h", ctypes.string_at(made.contents.samples, 2 * count))


def settings_of(voice: Voice, pitch: int, rate: int) -> dict[str, float]:
    """flite's ``--setf`` settings for voice, pitch and rate, as the program is given them."""
    options = engine_options(voice, pitch, rate)
    return {
        value.partition("=")[0]: float(value.partition("=")[2])
        for flag, value in zip(options[::2], options[1::2], strict=True)
        if flag == "--setf"
    }


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The worker's loop: one JSON request a line in, one JSON reply a line out, until EOF."""
    # Below robocall's own process: when the cores are short, the calls being answered now
    # (robocall's Event Socket work) go first and renders for later calls take what is left.
    os.nice(WORKER_NICENESS)
    flite = Flite()
    for line in requests:
        try:
            request = json.loads(line)
            samples = flite.speak(
                request["text"], request["voice"], request["settings"], request["sample_rate"]
            )
            if not any(abs(sample) > SILENCE_PEAK for sample in samples):
                reply: dict[str, Any] = {"silent": True}
            else:
                write_wav(Path(request["output"]), samples, request["sample_rate"])
                reply = {"ok": True}
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises TtsError
            reply = {"error": f"{type(err).__name__}: {err}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def write_wav(path: Path, samples: array.array[int], sample_rate: int) -> None:
    """Write native 16-bit mono samples as a (little-endian) WAV file."""
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.tobytes())


# --- robocall's side: workers, and the renderer the cache calls ------------------------------


class _Worker:
    def __init__(self) -> None:
        # The worker imports this module from the tree this process imported it from.
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "robocall.tts.flite_lib"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, env={**os.environ, "PYTHONPATH": path},
        )  # fmt: skip

    def render(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        import gevent  # the worker's own side never needs it

        assert self.process.stdin is not None and self.process.stdout is not None
        with gevent.Timeout(timeout, TtsError(f"{FLITE} did not finish within {timeout:g} s")):
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                line = self.process.stdout.readline()
            except OSError as err:
                raise TtsError(f"{FLITE} worker unreachable: {err}") from err
        if not line:
            raise TtsError(f"{FLITE} worker ended (exit {self.process.poll()})")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class WorkerRenderer:
    """Renders flite voices in worker processes, everything else as ``render_voice`` does.

    Its ``recipe`` goes into every cache key it renders under. Workers are started as renders
    need them and kept for the next (the cache bounds how many render at once).
    """

    recipe = WORKER_RECIPE

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._guard = threading.Lock()
        self.started = 0  # workers started (tests read it)

    def __call__(
        self, text: str, voice: Voice, pitch: int, rate: int, *,
        output: Path, sample_rate: int = DEFAULT_SAMPLE_RATE,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Path:  # fmt: skip
        if voice.engine != FLITE or sox_pitch_cents(voice, pitch):
            return render_voice(
                text, voice, pitch, rate, output=output, sample_rate=sample_rate, timeout=timeout
            )
        if not text.strip():
            raise TtsError("nothing to say: the message text is blank")
        request = {
            "text": text, "voice": voice.name, "settings": settings_of(voice, pitch, rate),
            "output": str(output), "sample_rate": sample_rate,
        }  # fmt: skip
        worker = self._take()
        try:
            reply = worker.render(request, timeout)
        except BaseException:
            worker.stop()  # mid-request: its next answer would belong to this one
            raise
        self._give_back(worker)
        if reply.get("silent"):
            raise TtsError(f"{FLITE} voice {voice.name} said nothing for this text")
        if "error" in reply:
            raise TtsError(f"{FLITE} worker failed: {reply['error']}")
        return output

    def close(self) -> None:
        """Stop the idle workers (a worker also ends when robocall does: its input closes)."""
        with self._guard:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _take(self) -> _Worker:
        with self._guard:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
            self.started += 1
        return _Worker()

    def _give_back(self, worker: _Worker) -> None:
        with self._guard:
            self._idle.append(worker)


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)

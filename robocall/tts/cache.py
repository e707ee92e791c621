"""A content-addressed cache of rendered messages, and where FreeSWITCH fetches them from.

A message's key is an HMAC-SHA256 of everything that shapes its audio: the render recipe's
version, the engine's and sox's versions, the voice, pitch, rate, sample rate and the text. The
same key is always the same file (``<directory>/<key[:2]>/<key>.wav``), so a campaign that says
the same words to 100,000 people renders them once. A message spoken in pieces
(:meth:`TtsCache.get_or_join`) is cached the same way: each piece is a message of its own, and
the joined file's key is an HMAC of its pieces' keys and pauses. The HMAC's secret is made once
per cache directory (``.key-secret``), so the URLs FreeSWITCH fetches (``/v1/tts/<key>.wav``)
cannot be computed from a guessed text: knowing what someone may have been told gives neither
its URL nor a way to confirm it was said.

A render writes a temporary file beside its final path and renames it into place: a reader sees
the whole file or none, also across processes sharing the directory. Within a process, renders
of one key are joined (the second caller waits for the first), and at most ``max_concurrent``
renders run at once (the machine's cores). The locks are ``threading``'s, which are gevent's
under monkey patching.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from robocall.config import Settings
from robocall.errors import ConfigError, TtsError, UnsafeValue
from robocall.tts.flite_lib import WorkerRenderer
from robocall.tts.join import Piece, join_wavs, read_trimmed
from robocall.tts.render import (
    DEFAULT_SAMPLE_RATE,
    DEFAULT_TIMEOUT_SECONDS,
    SAMPLE_RATES,
    SOX,
    engine_version,
    render_voice,
)
from robocall.tts.voices import Voice, check_level, select_voice

# Bump when the way text becomes audio changes (pitch/rate mapping, sox effects), so old files
# are no longer found under the new keys.
RECIPE_VERSION = 1
# Bump when the way pieces are joined changes (trimming, pauses).
JOIN_RECIPE_VERSION = 1
DEFAULT_MAX_CONCURRENT = 2
REMEMBERED_KEYS = 4096  # message keys kept in memory (a personalised request has one per name)
REMEMBERED_PIECES = 64  # trimmed pieces kept in memory for joins (~25 kB a second of audio)
KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
HTTP_ROUTE = "/v1/tts/"
TEMP_SUFFIX = ".partial"
SECRET_FILE = ".key-secret"
SECRET_BYTES = 32
# Characters that must not reach an Event Socket command (docs/design.md, "Security"); whitespace
# too, because play_and_get_digits separates its arguments with spaces and cannot quote a path.
UNSAFE_IN_REF = re.compile(r"[\s,{}]|\$\{")


class Renderer(Protocol):
    """What the cache calls to make a file: :func:`robocall.tts.render.render_voice`'s shape."""

    def __call__(
        self, text: str, voice: Voice, pitch: int, rate: int, *,
        output: Path, sample_rate: int, timeout: float,
    ) -> Path: ...  # fmt: skip


class TtsCache:
    """Rendered messages on disk, keyed by content; ``get_or_render`` is the one way in."""

    def __init__(
        self,
        directory: Path,
        *,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        base_url: str = "",
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        renderer: Renderer = render_voice,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ConfigError(f"TTS sample rate {sample_rate}: expected one of {SAMPLE_RATES}")
        if max_concurrent < 1:
            raise ConfigError(f"TTS concurrency {max_concurrent}: expected at least 1")
        check_base_url(base_url)
        self.directory = Path(directory).resolve()
        self.sample_rate = sample_rate
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.renders = 0  # files this cache rendered
        self.hits = 0  # requests answered by a file already on disk
        self.joins = 0  # messages this cache joined from pieces
        self._renderer = renderer
        # A renderer that makes audio its own way (robocall.tts.flite_lib) keys it apart.
        self._renderer_recipe: str = getattr(renderer, "recipe", "")
        self._clock = clock
        self._render_slots = threading.BoundedSemaphore(max_concurrent)
        self._key_locks: dict[str, tuple[threading.Lock, int]] = {}
        self._key_locks_guard = threading.Lock()
        self._counters_guard = threading.Lock()
        self._secret: bytes | None = None
        # (text, voice, pitch, rate, engine versions) -> key: no JSON and HMAC per call
        self._keys: dict[tuple[Any, ...], str] = {}
        # key -> its file, and file -> what FreeSWITCH is told to play: every call of a request
        # asks for the same few, and resolving a path (audio_ref) is a system call per
        # directory level, most of a call's prompt lookup. A key's file never moves.
        self._paths: dict[str, Path] = {}
        self._refs: dict[Path, str] = {}
        # piece file -> its trimmed samples and rate, least recently used first
        self._trimmed: dict[Path, tuple[array.array[int], int]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TtsCache:
        """The cache a robocall process uses, as its settings describe it."""
        return cls(
            settings.tts_cache_dir,
            sample_rate=settings.tts_sample_rate,
            max_concurrent=settings.tts_concurrency,
            base_url=settings.tts_base_url,
            renderer=WorkerRenderer(),
        )

    def key(self, text: str, lang: str, gender: str | None, pitch: int, rate: int) -> str:
        """The content key of a message (raises TtsError for an unknown language or level)."""
        return self.key_for_voice(text, select_voice(lang, gender), pitch, rate)

    def key_for_voice(self, text: str, voice: Voice, pitch: int, rate: int) -> str:
        """The content key of a message for a voice already chosen."""
        versions = (engine_version(voice.engine), engine_version(SOX))
        remembered = (text, voice, pitch, rate, versions)
        key = self._keys.get(remembered)
        if key is not None:  # every call of a request asks for the same few keys
            return key
        check_level("pitch", pitch)
        check_level("rate", rate)
        recipe = [
            RECIPE_VERSION,
            engine_version(voice.engine),
            engine_version(SOX),
            voice.engine,
            voice.name,
            pitch,
            rate,
            self.sample_rate,
            text,
        ]
        if self._renderer_recipe:
            recipe.insert(1, self._renderer_recipe)
        key = self._hmac(recipe)
        _remember(self._keys, remembered, key)
        return key

    def _hmac(self, recipe: list[Any]) -> str:
        if self._secret is None:
            self._secret = load_or_create_secret(self.directory)
        encoded = json.dumps(recipe, ensure_ascii=False).encode()
        return hmac.new(self._secret, encoded, hashlib.sha256).hexdigest()

    def path_for_key(self, key: str) -> Path:
        """Where the file of ``key`` lives (whether or not it exists yet)."""
        path = self._paths.get(key)
        if path is None:
            if not KEY_PATTERN.fullmatch(key):
                raise TtsError(f"not a TTS cache key: {key[:80]!r}")
            path = self.directory / key[:2] / f"{key}.wav"
            _remember(self._paths, key, path)
        return path

    def lookup(self, key: str) -> Path | None:
        """The file of ``key`` (``<key>`` or ``<key>.wav``) if it has been rendered, else None.

        Anything that is not a key (``..``, slashes, upper case) is None, so an HTTP route can
        hand its path segment straight in.
        """
        key = key.removesuffix(".wav")
        if not KEY_PATTERN.fullmatch(key):
            return None
        path = self.path_for_key(key)
        return path if path.is_file() else None

    def get_or_render(
        self, text: str, lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path:
        """The WAV file of this message, rendered now unless the cache already holds it."""
        return self._get_or_render_voice(text, select_voice(lang, gender), pitch, rate)

    def get_or_join(
        self, pieces: Sequence[Piece], lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path:
        """The WAV file of a message spoken piece by piece (:func:`robocall.tts.join.split_pieces`).

        Each piece is a cached file of its own, so the text every destination shares is
        rendered once and only what differs is rendered per call; the joined file is cached
        too, under a key made of its pieces' keys and pauses (the same pieces always make the
        same file, as for whole messages).
        """
        if not pieces:
            raise TtsError("nothing to say: the message has no words")
        voice = select_voice(lang, gender)
        if len(pieces) == 1:
            return self._get_or_render_voice(pieces[0].text, voice, pitch, rate)
        key, path = self._joined(pieces, voice, pitch, rate)
        if self._hit(path):
            return path
        pauses = [piece.pause_before_ms for piece in pieces]
        paths = [self._get_or_render_voice(piece.text, voice, pitch, rate) for piece in pieces]
        with self._key_lock(key):
            if not self._hit(path):
                self._write_atomically(
                    path, lambda partial: join_wavs(paths, pauses, partial, self._read_trimmed)
                )
                with self._counters_guard:
                    self.joins += 1
        return path

    def find(self, text: str, lang: str, gender: str | None, pitch: int, rate: int) -> Path | None:
        """The WAV file of this message if the cache holds it, else None (nothing is rendered:
        a lookup that never waits)."""
        path = self.path_for_key(self.key_for_voice(text, select_voice(lang, gender), pitch, rate))
        return path if self._hit(path) else None

    def find_joined(
        self, pieces: Sequence[Piece], lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path | None:
        """The file :meth:`get_or_join` gives for ``pieces`` if the cache holds it, else None."""
        if len(pieces) < 2:
            return self.find(pieces[0].text, lang, gender, pitch, rate) if pieces else None
        _, path = self._joined(pieces, select_voice(lang, gender), pitch, rate)
        return path if self._hit(path) else None

    def _joined(
        self, pieces: Sequence[Piece], voice: Voice, pitch: int, rate: int
    ) -> tuple[str, Path]:
        """The key and file of pieces joined. Known without touching a piece: a message asked
        for again (the call's runner after the prefetcher) is one lookup."""
        piece_keys = [self.key_for_voice(piece.text, voice, pitch, rate) for piece in pieces]
        pauses = [piece.pause_before_ms for piece in pieces]
        key = self._hmac(["joined", JOIN_RECIPE_VERSION, piece_keys, pauses])
        return key, self.path_for_key(key)

    def _get_or_render_voice(self, text: str, voice: Voice, pitch: int, rate: int) -> Path:
        key = self.key_for_voice(text, voice, pitch, rate)
        path = self.path_for_key(key)
        if self._hit(path):
            return path
        with self._key_lock(key):
            if self._hit(path):  # another greenlet rendered it while this one waited
                return path
            with self._render_slots:
                self._render_into(path, text, voice, pitch, rate)
            with self._counters_guard:
                self.renders += 1
        return path

    def _read_trimmed(self, path: Path) -> tuple[array.array[int], int]:
        """A piece's samples trimmed to its speech, remembered: the text every destination
        shares is read and trimmed once, not once per call (a key's file never changes)."""
        remembered = self._trimmed.pop(path, None)
        if remembered is None:
            remembered = read_trimmed(path)
            if len(self._trimmed) >= REMEMBERED_PIECES:
                self._trimmed.pop(next(iter(self._trimmed)))  # the least recently used
        self._trimmed[path] = remembered
        return remembered

    def close(self) -> None:
        """Stop what the renderer keeps running (the flite workers), if anything."""
        close = getattr(self._renderer, "close", None)
        if close is not None:
            close()

    def audio_ref(self, path: Path) -> str:
        """What FreeSWITCH is told to play for a cached file (see :func:`audio_ref`)."""
        ref = self._refs.get(path)
        if ref is None:
            ref = audio_ref(path, self.base_url)
            _remember(self._refs, path, ref)
        return ref

    def prune(self, max_idle_seconds: float) -> int:
        """Delete files not rendered or used for ``max_idle_seconds``; returns how many.

        Leftovers of renders that died midway are deleted by the same rule.
        """
        oldest_kept = self._clock() - max_idle_seconds
        removed = 0
        if not self.directory.is_dir():
            return 0
        for entry in self.directory.glob("??/*"):
            with contextlib.suppress(FileNotFoundError):  # a concurrent prune got there first
                if entry.stat().st_mtime < oldest_kept:
                    entry.unlink()
                    removed += 1
        return removed

    def _hit(self, path: Path) -> bool:
        try:
            # The mtime says when a file was last used, which is what prune goes by.
            now = self._clock()
            os.utime(path, (now, now))
        except FileNotFoundError:
            return False
        with self._counters_guard:
            self.hits += 1
        return True

    def _render_into(self, path: Path, text: str, voice: Voice, pitch: int, rate: int) -> None:
        def render(partial: Path) -> None:
            self._renderer(
                text, voice, pitch, rate,
                output=partial, sample_rate=self.sample_rate, timeout=self.timeout,
            )  # fmt: skip

        self._write_atomically(path, render)

    def _write_atomically(self, path: Path, write: Callable[[Path], None]) -> None:
        """``write`` a temporary file beside ``path``, then rename it into place."""
        try:
            handle, partial_name = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.stem}.", suffix=TEMP_SUFFIX
            )
        except FileNotFoundError:  # the first file under this prefix: make its directory
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, partial_name = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.stem}.", suffix=TEMP_SUFFIX
            )
        os.close(handle)
        partial = Path(partial_name)
        try:
            write(partial)
            partial.chmod(0o644)  # FreeSWITCH may run as another user; mkstemp made it 0600
            now = self._clock()
            os.utime(partial, (now, now))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._key_locks_guard:
            lock, users = self._key_locks.get(key, (threading.Lock(), 0))
            self._key_locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._key_locks_guard:
                lock, users = self._key_locks[key]
                if users == 1:
                    del self._key_locks[key]
                else:
                    self._key_locks[key] = (lock, users - 1)


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` under ``key``, the memo bounded as the message keys are."""
    if len(memo) >= REMEMBERED_KEYS:
        memo.clear()
    memo[key] = value


def load_or_create_secret(directory: Path) -> bytes:
    """The cache directory's key secret, made on first use (the first process to make it wins)."""
    path = directory / SECRET_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        handle, candidate = tempfile.mkstemp(dir=directory, prefix=SECRET_FILE, suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(secrets.token_bytes(SECRET_BYTES))
            # link, unlike rename, fails when another process linked its secret first
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            os.unlink(candidate)
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise ConfigError(f"{path} is damaged: delete it (and the cache files keyed by it)")
    return secret


def audio_ref(path: Path, base_url: str = "") -> str:
    """What FreeSWITCH is told to play: the file's absolute path when it shares robocall's disk,
    or ``http_cache://<base_url>/v1/tts/<key>.wav`` (mod_http_cache) when ``base_url`` is set.

    Raises UnsafeValue when the result could not travel in an Event Socket command.
    """
    if base_url:
        check_base_url(base_url)
        ref = f"http_cache://{base_url.rstrip('/')}{HTTP_ROUTE}{Path(path).name}"
    else:
        ref = str(Path(path).resolve())
    if UNSAFE_IN_REF.search(ref):
        raise UnsafeValue(
            f"TTS audio reference {ref!r} holds whitespace, a comma, a brace or '${{': "
            "choose a cache directory / base URL without them"
        )
    return ref


def check_base_url(base_url: str) -> None:
    """Raise ConfigError unless ``base_url`` is empty or an http(s) URL FreeSWITCH can fetch."""
    if not base_url:
        return
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", base_url) or UNSAFE_IN_REF.search(base_url):
        raise ConfigError(
            f"TTS base URL {base_url!r}: expected http://HOST:PORT (no spaces, commas or braces)"
        )

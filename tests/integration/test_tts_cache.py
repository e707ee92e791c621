"""The content-addressed cache over the real engines, under gevent as robocall runs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import gevent
import pytest

from robocall.errors import ConfigError, TtsError
from robocall.tts.cache import SECRET_FILE, TEMP_SUFFIX, TtsCache
from robocall.tts.render import render_voice
from robocall.tts.voices import Voice
from tests.support.audio import read_wav

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = "Your parcel arrives tomorrow between nine and eleven."
LONG_TEXT = "Please press one to confirm your appointment, or two to move it. " * 15


class RenderLog:
    """Wraps the real renderer: counts renders and the most that ran at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.most_running = 0

    def __call__(self, text: str, voice: Voice, pitch: int, rate: int, **options: object) -> Path:
        self.calls.append(text)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            return render_voice(text, voice, pitch, rate, **options)  # type: ignore[arg-type]
        finally:
            self.running -= 1


@pytest.fixture
def log() -> RenderLog:
    return RenderLog()


@pytest.fixture
def cache(tmp_path: Path, log: RenderLog) -> TtsCache:
    return TtsCache(tmp_path / "tts", renderer=log)


def leftovers(cache: TtsCache) -> list[Path]:
    return [p for p in cache.directory.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_a_second_request_is_served_from_disk_without_rendering(
    cache: TtsCache, log: RenderLog
) -> None:
    # Given a message rendered once
    first = cache.get_or_render(TEXT, "en", "male", 5, 5)
    inode = first.stat().st_ino
    # when it is asked for again
    second = cache.get_or_render(TEXT, "en", "male", 5, 5)
    # then the same file answers, and the engine ran once
    assert second == first
    assert second.stat().st_ino == inode
    assert len(log.calls) == 1
    assert (cache.renders, cache.hits) == (1, 1)
    wav = read_wav(second)
    assert (wav.sample_rate, wav.channels, wav.sample_width_bytes) == (8000, 1, 2)


def test_any_difference_that_changes_the_audio_is_another_file(cache: TtsCache) -> None:
    variants = [
        (TEXT, "en", "male", 5, 5),
        (TEXT + " ", "en", "male", 5, 5),
        (TEXT, "en", "female", 5, 5),
        (TEXT, "en", "male", 6, 5),
        (TEXT, "en", "male", 5, 6),
        (TEXT, "vi", "male", 5, 5),
    ]
    paths = {cache.get_or_render(*variant) for variant in variants}
    assert len(paths) == len(variants)
    other_rate = TtsCache(cache.directory, sample_rate=16000)
    assert other_rate.key(*variants[0]) != cache.key(*variants[0])


def test_keys_come_from_a_secret_kept_in_the_directory(cache: TtsCache, tmp_path: Path) -> None:
    # Given a cache that rendered a message
    path = cache.get_or_render(TEXT, "en", "male", 5, 5)
    key = path.stem
    # then a restarted process on the same directory finds it under the same key
    assert TtsCache(cache.directory).key(TEXT, "en", "male", 5, 5) == key
    # while the plain hash of the text (or another directory's key) does not name it
    assert TtsCache(tmp_path / "elsewhere").key(TEXT, "en", "male", 5, 5) != key
    assert hashlib.sha256(TEXT.encode()).hexdigest() != key
    # and the secret is private to robocall's user and never pruned
    secret = cache.directory / SECRET_FILE
    assert secret.stat().st_mode & 0o077 == 0
    long_ago = secret.stat().st_mtime - 3 * 86400
    os.utime(secret, (long_ago, long_ago))
    cache.prune(86400)
    assert secret.exists()


def test_a_damaged_secret_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(ConfigError, match="is damaged: delete it"):
        TtsCache(tmp_path).key(TEXT, "en", "male", 5, 5)


def test_no_gender_and_female_share_one_file(cache: TtsCache, log: RenderLog) -> None:
    assert cache.get_or_render(TEXT, "en", None, 5, 5) == cache.get_or_render(
        TEXT, "en", "female", 5, 5
    )
    assert len(log.calls) == 1


def test_the_file_lives_where_its_key_says(cache: TtsCache) -> None:
    path = cache.get_or_render(TEXT, "th", "female", 3, 7)
    key = cache.key(TEXT, "th", "female", 3, 7)
    assert path == cache.path_for_key(key)
    assert cache.lookup(key) == path
    assert cache.lookup(f"{key}.wav") == path
    assert cache.lookup("0" * 64) is None
    assert path.stat().st_mode & 0o044 == 0o044  # FreeSWITCH may read as another user
    assert leftovers(cache) == []


def test_greenlets_asking_for_one_message_share_one_render(cache: TtsCache, log: RenderLog) -> None:
    # Given five greenlets asking for the same new message at once
    greenlets = [gevent.spawn(cache.get_or_render, LONG_TEXT, "en", "male", 5, 5) for _ in range(5)]
    gevent.joinall(greenlets, raise_error=True)
    # then one render made the file they all get
    assert len({g.value for g in greenlets}) == 1
    assert len(log.calls) == 1
    assert cache.hits == 4


def test_renders_run_two_at_a_time(tmp_path: Path, log: RenderLog) -> None:
    # Given a cache for a 2-core machine and six different messages requested at once
    cache = TtsCache(tmp_path / "tts", renderer=log, max_concurrent=2)
    greenlets = [
        gevent.spawn(cache.get_or_render, f"Message number {n}.", "vi", "female", 5, 5)
        for n in range(6)
    ]
    gevent.joinall(greenlets, raise_error=True)
    # then all were rendered, never more than two at once, and two did overlap
    assert len(log.calls) == 6
    assert log.most_running == 2


def test_the_hub_keeps_running_while_a_message_renders(cache: TtsCache) -> None:
    # Given a greenlet that counts while another renders a long message (engine versions are
    # asked first, so only the render itself runs while the counter is watched)
    cache.key(LONG_TEXT, "en", "female", 5, 5)
    ticks = 0

    def count() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            gevent.sleep(0.001)

    counter = gevent.spawn(count)
    gevent.sleep(0)
    ticks_before = ticks
    cache.get_or_render(LONG_TEXT, "en", "female", 5, 5)
    ticks_during = ticks - ticks_before
    counter.kill()
    # then the counter ran during the render (a blocking render would leave it at 0)
    assert ticks_during > 0


def test_a_failed_render_leaves_nothing_and_is_retried(cache: TtsCache, log: RenderLog) -> None:
    # Given a message an engine cannot say (Hebrew has no rules for digits)
    for _ in range(2):
        with pytest.raises(TtsError, match="said nothing"):
            cache.get_or_render("1 2 3", "he", "male", 5, 5)
    # then no file is cached under its key, nothing half-written is left, and it was tried twice
    assert cache.lookup(cache.key("1 2 3", "he", "male", 5, 5)) is None
    assert leftovers(cache) == []
    assert len(log.calls) == 2
    assert cache.renders == 0


def test_prune_deletes_what_has_not_been_used(cache: TtsCache) -> None:
    # Given an old file and a file just used
    old = cache.get_or_render("Old news.", "en", "male", 5, 5)
    fresh = cache.get_or_render("Fresh news.", "en", "male", 5, 5)
    long_ago = old.stat().st_mtime - 3 * 86400
    os.utime(old, (long_ago, long_ago))
    stale_partial = old.parent / f".{old.stem}.x{TEMP_SUFFIX}"
    stale_partial.write_bytes(b"RIFF")
    os.utime(stale_partial, (long_ago, long_ago))
    # when the cache is pruned of files idle for a day
    removed = cache.prune(86400)
    # then the old file and the dead render's leftover go, the fresh file stays
    assert removed == 2
    assert not old.exists() and not stale_partial.exists()
    assert fresh.exists()


def test_a_hit_counts_as_use_for_prune(cache: TtsCache) -> None:
    path = cache.get_or_render("Still in use.", "en", "male", 5, 5)
    long_ago = path.stat().st_mtime - 3 * 86400
    os.utime(path, (long_ago, long_ago))
    cache.get_or_render("Still in use.", "en", "male", 5, 5)
    assert cache.prune(86400) == 0
    assert path.exists()


def test_processes_rendering_one_message_into_one_directory_leave_one_whole_file(
    tmp_path: Path,
) -> None:
    # Given two robocall processes sharing a cache directory, rendering the same message at once
    script = (
        "import sys; from pathlib import Path; from robocall.tts.cache import TtsCache; "
        "print(TtsCache(Path(sys.argv[1])).get_or_render(sys.argv[2], 'en', 'male', 5, 5))"
    )
    command = [sys.executable, "-c", script, str(tmp_path / "tts"), LONG_TEXT]
    workers = [
        subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[0].strip() for worker in workers]
    # then both name the same file, it is a whole WAV, and nothing half-written is left
    assert all(worker.returncode == 0 for worker in workers)
    assert outputs[0] == outputs[1]
    wav = read_wav(Path(outputs[0]))
    assert wav.duration_seconds > 10
    assert leftovers(TtsCache(tmp_path / "tts")) == []

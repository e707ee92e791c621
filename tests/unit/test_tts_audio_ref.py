"""Where FreeSWITCH fetches a rendered message, and which names the cache answers to."""

from __future__ import annotations

from pathlib import Path

import pytest

from robocall.config import from_env
from robocall.errors import ConfigError, TtsError, UnsafeValue
from robocall.tts.cache import TtsCache, audio_ref

KEY = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"


def test_a_shared_disk_plays_the_absolute_path() -> None:
    # Given a cache file named by a relative path, then FreeSWITCH is told the absolute one
    ref = audio_ref(Path("cache") / KEY[:2] / f"{KEY}.wav")
    assert ref == str((Path("cache") / KEY[:2] / f"{KEY}.wav").resolve())
    assert ref.startswith("/")


def test_a_base_url_plays_through_mod_http_cache() -> None:
    ref = audio_ref(Path("/var/cache") / KEY[:2] / f"{KEY}.wav", "http://10.0.0.5:8080/")
    assert ref == f"http_cache://http://10.0.0.5:8080/v1/tts/{KEY}.wav"


@pytest.mark.parametrize(
    "directory", ["/tmp/my cache", "/tmp/a,b", "/tmp/${x}", "/tmp/{a}", "/tmp/a\nb"]
)
def test_a_path_that_could_inject_into_esl_is_refused(directory: str) -> None:
    with pytest.raises(UnsafeValue, match="cache directory"):
        audio_ref(Path(directory) / f"{KEY}.wav")


@pytest.mark.parametrize(
    "base_url", ["ftp://host", "http://", "host:8080", "http://a b", "http://h/${x}", "http://h,"]
)
def test_a_base_url_freeswitch_cannot_fetch_is_a_config_error(base_url: str) -> None:
    with pytest.raises(ConfigError, match="TTS base URL"):
        TtsCache(Path("/tmp/tts"), base_url=base_url)
    with pytest.raises(ConfigError):
        audio_ref(Path(f"/tmp/{KEY}.wav"), base_url)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", KEY.upper(), KEY[:-1], f"{KEY}.mp3", f"ab/{KEY}", "", ".wav"]
)
def test_lookup_answers_none_for_anything_but_a_key(name: str) -> None:
    # An HTTP route can hand its path segment straight in: nothing but a key reaches the disk
    assert TtsCache(Path("/tmp/tts")).lookup(name) is None


def test_path_for_key_shards_by_the_first_two_hex_digits() -> None:
    cache = TtsCache(Path("/var/tts"))
    assert cache.path_for_key(KEY) == Path("/var/tts") / "ab" / f"{KEY}.wav"
    with pytest.raises(TtsError, match="not a TTS cache key"):
        cache.path_for_key("../x")


def test_settings_carry_the_tts_fields() -> None:
    settings = from_env(
        {
            "ROBOCALL_DATA_DIR": "/srv/robocall",
            "ROBOCALL_TTS_BASE_URL": "http://192.0.2.7:8080",
            "ROBOCALL_TTS_SAMPLE_RATE": "16000",
            "ROBOCALL_TTS_CONCURRENCY": "3",
        }
    )
    cache = TtsCache.from_settings(settings)
    assert cache.directory == Path("/srv/robocall/tts-cache")
    assert cache.sample_rate == 16000
    assert cache.audio_ref(cache.path_for_key(KEY)) == (
        f"http_cache://http://192.0.2.7:8080/v1/tts/{KEY}.wav"
    )


@pytest.mark.parametrize(("field", "value"), [("sample_rate", 44100), ("max_concurrent", 0)])
def test_a_cache_refuses_settings_it_cannot_honour(field: str, value: int) -> None:
    with pytest.raises(ConfigError):
        TtsCache(Path("/tmp/tts"), **{field: value})  # type: ignore[arg-type]

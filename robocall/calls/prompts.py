"""A message, for one destination, as audio FreeSWITCH can play.

The placeholders are filled from the destination's properties in the sandbox, the text is
rendered by the TTS cache (or found there), and FreeSWITCH gets the file's path or its
``http_cache://`` URL. Runs in the call's own greenlet: rendering never touches the Event
Socket reader or the dispatcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from robocall.flow.model import Message
from robocall.flow.templates import compile_template


class AudioCache(Protocol):
    """What ``robocall.tts.cache.TtsCache`` offers the call runner."""

    def get_or_render(
        self, text: str, lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path: ...

    def audio_ref(self, path: Path) -> str: ...


class Prompts:
    """Renders a flow's messages per destination through the TTS cache."""

    def __init__(self, cache: AudioCache) -> None:
        self.cache = cache

    def text(self, message: Message, properties: Mapping[str, str]) -> str:
        """The message with the destination's properties filled in."""
        return compile_template(message.text).render(properties)

    def audio(self, message: Message, properties: Mapping[str, str]) -> str:
        """A file path or URL FreeSWITCH plays for this message and destination."""
        gender = message.gender.value if message.gender is not None else None
        path = self.cache.get_or_render(
            self.text(message, properties), message.lang, gender, message.pitch, message.rate
        )
        return self.cache.audio_ref(path)

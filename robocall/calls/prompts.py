"""A message, for one destination, as audio FreeSWITCH can play.

The placeholders are filled from the destination's properties, the text is rendered by the TTS
cache (or found there), and FreeSWITCH gets the file's path or its ``http_cache://`` URL.

A message without placeholders is rendered whole, once for every destination. A personalised
one ("Dear {{name}}, ...") is spoken in pieces: the text around the placeholders is the same for
every destination, so it is rendered once and shared, and only the destination's values are
rendered per call (robocall.tts.join says how the pieces are joined and paused). That is what
lets a request with a different name per destination be dialled as fast as one message for
all: per call, an engine run over a name instead of over the whole text. Should a piece be
unsayable on its own (an engine that says nothing for a lone number), the message is rendered
whole instead.

Runs in the call's own greenlet (or the queue's prefetcher): rendering never touches the Event
Socket reader or the dispatcher.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from robocall.errors import TtsError
from robocall.flow.model import Message
from robocall.flow.templates import MessageTemplate, compile_template
from robocall.tts.join import Piece, split_pieces

log = logging.getLogger(__name__)


class AudioCache(Protocol):
    """What ``robocall.tts.cache.TtsCache`` offers the call runner."""

    def get_or_render(
        self, text: str, lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path: ...

    def get_or_join(
        self, pieces: Sequence[Piece], lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path: ...

    def audio_ref(self, path: Path) -> str: ...

    def find(self, text: str, lang: str, gender: str | None, pitch: int, rate: int) -> Path | None:
        ...

    def find_joined(
        self, pieces: Sequence[Piece], lang: str, gender: str | None, pitch: int, rate: int
    ) -> Path | None: ...


class Prompts:
    """Renders a flow's messages per destination through the TTS cache."""

    def __init__(self, cache: AudioCache) -> None:
        self.cache = cache

    def text(self, message: Message, properties: Mapping[str, str]) -> str:
        """The message with the destination's properties filled in."""
        return template_of(message.text).render(properties)

    def audio(self, message: Message, properties: Mapping[str, str]) -> str:
        """A file path or URL FreeSWITCH plays for this message and destination."""
        return self.cache.audio_ref(self.audio_path(message, properties))

    def audio_path(self, message: Message, properties: Mapping[str, str]) -> Path:
        """The cached WAV file of this message for this destination (rendered if need be)."""
        voice = _voice_of(message)
        template = template_of(message.text)
        pieces = _pieces(template, properties)
        if pieces is not None:
            try:
                return self.cache.get_or_join(pieces, *voice)
            except TtsError as err:
                log.info("message spoken whole, not in pieces: %s", err)
        return self.cache.get_or_render(template.render(properties), *voice)

    def audio_if_ready(self, message: Message, properties: Mapping[str, str]) -> str | None:
        """What :meth:`audio` gives when the cache already holds the file, else None: a lookup
        that never renders nor waits (a call whose first message the prefetcher rendered
        needs no render greenlet, nor a wait on one)."""
        voice = _voice_of(message)
        template = template_of(message.text)
        pieces = _pieces(template, properties)
        try:
            if pieces is not None:
                path = self.cache.find_joined(pieces, *voice)
            else:
                path = self.cache.find(template.render(properties), *voice)
        except TtsError:
            return None  # left to audio(), which says what is wrong when the message is due
        return None if path is None else self.cache.audio_ref(path)


def _pieces(template: MessageTemplate, properties: Mapping[str, str]) -> list[Piece] | None:
    """A personalised message's pieces for this destination (None: it is spoken whole)."""
    if template.names and not template.missing(properties):
        return split_pieces(runs(template, properties))
    return None


def _voice_of(message: Message) -> tuple[str, str | None, int, int]:
    gender = message.gender.value if message.gender is not None else None
    return (message.lang, gender, message.pitch, message.rate)


def runs(template: MessageTemplate, properties: Mapping[str, str]) -> list[str]:
    """The template's literal text and the destination's values, in order (joined, they are
    the rendered message)."""
    values = iter(template.names)
    return [part if part is not None else str(properties[next(values)]) for part in template.parts]


@functools.lru_cache(maxsize=1024)
def template_of(text: str) -> MessageTemplate:
    """The compiled template of a message text (a request's calls share a few texts)."""
    return compile_template(text)

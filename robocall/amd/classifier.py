"""Human or machine, from a call's frames: every decision rule, in one place. Pure.

The classifier is fed one :class:`~robocall.amd.features.FrameFeatures` per 20 ms of the
callee's audio, from the answer on, and says once who answered (a :class:`Verdict`). After a
``machine`` verdict it goes on listening for the end of the greeting (a :class:`GreetingEnd`):
the end of the beep, or — when no beep comes — a silence long enough that no beep is coming.

The rules (docs/amd.md shows the corpus numbers behind each threshold):

1. A steady tone of ``beep_min_ms`` or more is a beep: ``machine``.
2. An utterance is speech up to a pause long enough to end it (a burst of less than
   ``min_utterance_ms`` of speech is noise and forgotten).
3. An utterance longer than ``max_human_speech_ms``: a greeting, ``machine`` — decided while
   the greeting still plays.
4. An utterance followed by a silence as long as ``human_silence_ms`` asks for an utterance of
   its length: a person who said "Hello?" and waits for an answer, ``human``. The longer the
   utterance, the longer the silence asked for: a greeting's pauses between sentences grow with
   its sentences (a 2.5 s sentence and a 0.6 s pause), while "Hello?" is over in 0.6 s.
5. No utterance within ``initial_silence_ms`` of the answer: ``unknown`` (a silent line tells
   nothing about who holds it).
6. No verdict by ``max_detection_ms``: ``unknown``.

Times are milliseconds of audio from the answer: the classifier never reads a clock, so the
same frames give the same verdict whether they arrive in real time or all at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from robocall.amd.features import FRAME_MS, FrameFeatures


class AnsweredBy(StrEnum):
    """Who picked up, as every status detail reports it (``answeredBy``)."""

    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rules:
    """Every threshold of the decision, in ms of audio."""

    initial_silence_ms: int = 2500
    min_utterance_ms: int = 120
    # (utterance up to this long, the silence after it that makes it a person), shortest first.
    human_silence_ms: tuple[tuple[int, int], ...] = ((1200, 300), (1600, 400), (2800, 650))
    max_human_speech_ms: int = 2800
    beep_min_ms: int = 120
    max_detection_ms: int = 6000
    # After a machine verdict: silence this long with no beep ends the greeting; a greeting
    # still going after max_greeting_ms is given up on (the message is left anyway).
    greeting_end_silence_ms: int = 2000
    max_greeting_ms: int = 60_000
    # A beep is over once no tone has been heard for this long: in line noise a beep's last
    # frames may no longer read as tone, and the message must not start over its tail.
    beep_end_quiet_ms: int = 100


@dataclass(frozen=True)
class Verdict:
    """Who answered, when it was decided (ms of audio from the answer), and by which rule."""

    answered_by: AnsweredBy
    at_ms: int
    reason: str


@dataclass(frozen=True)
class GreetingEnd:
    """A machine's greeting is over at ``at_ms``: after the beep (``by="beep"``), after a
    silence with no beep (``"silence"``), or given up on (``"timeout"``)."""

    at_ms: int
    by: str


Finding = Verdict | GreetingEnd


class Classifier:
    """The rules over one call's frames, fed in order."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        self.verdict: Verdict | None = None
        self.greeting_end: GreetingEnd | None = None
        self.elapsed_ms = 0
        self._utterance_start: int | None = None  # ms where the current utterance began
        self._utterance_speech_ms = 0
        self._last_speech_end = 0
        self._heard_speech = False  # an utterance has passed the noise bar
        self._silence_ms = 0  # non-speech since the last speech frame (tones included)
        self._quiet_ms = 0  # neither speech nor tone: the silence that ends a greeting
        self._tone_ms = 0
        self._tone_hz = 0.0
        self._beep_heard = False
        self._beep_ended_at: int | None = None  # where the last beep's tone stopped

    @property
    def done(self) -> bool:
        """Nothing more to learn: a human or unknown verdict, or a machine's greeting over."""
        if self.verdict is None:
            return False
        return self.verdict.answered_by is not AnsweredBy.MACHINE or self.greeting_end is not None

    def feed(self, frame: FrameFeatures) -> list[Finding]:
        """One more frame; returns what it decided (usually nothing)."""
        if self.done:
            return []
        start = self.elapsed_ms
        self.elapsed_ms = end = start + FRAME_MS
        beep_ended = self._track_tone(frame)
        if frame.speech:
            self._on_speech(start, end)
        else:
            self._silence_ms += FRAME_MS
            self._quiet_ms = 0 if frame.tone_hz is not None else self._quiet_ms + FRAME_MS
        found: list[Finding] = []
        if self.verdict is None:
            verdict = self._decide(end)
            if verdict is not None:
                self.verdict = verdict
                found.append(verdict)
        if self.verdict is not None and self.verdict.answered_by is AnsweredBy.MACHINE:
            greeting_end = self._greeting_over(end, beep_ended)
            if greeting_end is not None:
                self.greeting_end = greeting_end
                found.append(greeting_end)
        return found

    # --- the rules ----------------------------------------------------------------------------

    def _track_tone(self, frame: FrameFeatures) -> bool:
        """Follow the current tone; True when a beep (a long enough tone) just ended."""
        rules = self.rules
        if frame.tone_hz is not None and self._tone_ms and abs(frame.tone_hz - self._tone_hz) < 60:
            self._tone_ms += FRAME_MS
        else:
            was_beep = self._tone_ms >= rules.beep_min_ms
            self._tone_ms = FRAME_MS if frame.tone_hz is not None else 0
            self._tone_hz = frame.tone_hz or 0.0
            if was_beep:
                return True
        if self._tone_ms >= rules.beep_min_ms:
            self._beep_heard = True
        return False

    def _on_speech(self, start: int, end: int) -> None:
        if self._utterance_start is None:
            self._utterance_start = start
            self._utterance_speech_ms = 0
        self._utterance_speech_ms += FRAME_MS
        if self._utterance_speech_ms >= self.rules.min_utterance_ms:
            self._heard_speech = True
        self._last_speech_end = end
        self._silence_ms = 0
        self._quiet_ms = 0

    def _decide(self, now: int) -> Verdict | None:
        rules = self.rules
        if self._beep_heard:
            return Verdict(AnsweredBy.MACHINE, now, "beep")
        start = self._utterance_start
        if start is not None and self._utterance_speech_ms >= rules.min_utterance_ms:
            if self._last_speech_end - start > rules.max_human_speech_ms:
                return Verdict(AnsweredBy.MACHINE, now, "long greeting")
            if self._silence_ms >= self._silence_ending(self._last_speech_end - start):
                return Verdict(AnsweredBy.HUMAN, now, "short answer, then silence")
        elif start is not None and self._silence_ms >= rules.human_silence_ms[0][1]:
            self._utterance_start = None  # a click or a burst of noise, not a word
        nothing_said = not self._heard_speech and self._utterance_start is None
        if nothing_said and now >= rules.initial_silence_ms:
            return Verdict(AnsweredBy.UNKNOWN, now, "silence")
        if now >= rules.max_detection_ms:
            return Verdict(AnsweredBy.UNKNOWN, now, "undecided")
        return None

    def _silence_ending(self, utterance_ms: int) -> int:
        """The silence after an utterance this long that makes its speaker a person."""
        for longest, silence in self.rules.human_silence_ms:
            if utterance_ms <= longest:
                return silence
        return self.rules.human_silence_ms[-1][1]

    def _greeting_over(self, now: int, beep_ended: bool) -> GreetingEnd | None:
        rules = self.rules
        if beep_ended:
            self._beep_ended_at = now - FRAME_MS
        elif self._tone_ms:
            self._beep_ended_at = None  # the tone is back: the beep goes on (or another comes)
        if self._beep_ended_at is not None and now - self._beep_ended_at >= rules.beep_end_quiet_ms:
            return GreetingEnd(now, "beep")
        if self._tone_ms == 0 and self._quiet_ms >= rules.greeting_end_silence_ms:
            return GreetingEnd(now, "silence")
        if now >= rules.max_greeting_ms:
            return GreetingEnd(now, "timeout")
        return None


def classify(frames: Iterable[FrameFeatures], rules: Rules | None = None) -> Classifier:
    """Feed ``frames`` until the classifier is done (or they run out); returns it."""
    classifier = Classifier(rules)
    for frame in frames:
        classifier.feed(frame)
        if classifier.done:
            break
    return classifier

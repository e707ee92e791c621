"""The call request and its callFlow as frozen values.

These are what the REST layer parses a request into (``robocall.flow.parse``), what the store
keeps, and what the compiler turns into a state machine. Message texts are kept as submitted,
placeholders included: ``robocall.flow.templates`` renders them per destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import ClassVar

DEFAULT_LANG = "en"
NATURAL_PITCH = 5
NATURAL_RATE = 5
DEFAULT_MAX_RETRIES = 3


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True)
class Message:
    """A text to speak. ``text`` may hold ``{{placeholders}}``; pitch and rate run 0-9."""

    text: str
    lang: str = DEFAULT_LANG
    gender: Gender | None = None
    pitch: int = NATURAL_PITCH
    rate: int = NATURAL_RATE


@dataclass(frozen=True)
class Play:
    """Play a message to the callee."""

    message: Message
    name: ClassVar[str] = "play"


@dataclass(frozen=True)
class Branch:
    """Where a gather goes on ``digits`` (keys ``0-9*#``), or on anything if it is the default."""

    digits: str | None
    is_default: bool
    flow: CallFlow


@dataclass(frozen=True)
class Gather:
    """Play a message and collect keypad digits; ``max_retries`` failed tries at the most."""

    message: Message
    branches: tuple[Branch, ...]
    max_retries: int = DEFAULT_MAX_RETRIES
    name: ClassVar[str] = "gather"

    @property
    def default_branch(self) -> Branch | None:
        return next((b for b in self.branches if b.is_default), None)

    def branch_for(self, digits: str) -> Branch | None:
        """The branch whose digits equal ``digits`` exactly, if any (the default is not implied)."""
        return next((b for b in self.branches if b.digits == digits), None)


class TransferKind(StrEnum):
    EXTENSION = "extension"  # "Ext:1000": a PBX extension, not a second line
    NUMBER = "number"  # an E.164 number: a second line on the trunk


@dataclass(frozen=True)
class Transfer:
    """Bridge the call to a person; the robo leg ends when the bridge ends."""

    kind: TransferKind
    target: str  # the extension's digits, or the E.164 number as submitted
    name: ClassVar[str] = "transfer"


Step = Play | Gather | Transfer


@dataclass(frozen=True)
class CallFlow:
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Destination:
    """One number to call; ``properties`` fill the message placeholders (values are text)."""

    phone: str
    caller: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class CallRequest:
    """A whole ``POST /v1/call`` body, validated."""

    request_id: str
    destinations: tuple[Destination, ...]
    call_flow: CallFlow
    enable_call_recording: bool = False
    callback_url: str | None = None  # where webhooks go (robocall's extension)
    retry: RetryPolicy | None = None  # extension: none, as in the seed
    window: CallingWindow | None = None  # extension: any time, as in the seed


# --- extensions beyond the seed: retry policy, calling window, lines -------------------------


class RetryOutcome(StrEnum):
    """A definite outcome of an unanswered call that a retry policy may retry."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """Dial again, up to ``max_attempts`` in all, when an attempt ends in one of ``on``."""

    max_attempts: int
    on: frozenset[RetryOutcome]
    backoff_seconds: int = 0


DESTINATION_TIME_ZONE = "destination"


@dataclass(frozen=True)
class DailyWindow:
    """Hours of the day (``start`` to ``end``, local) when calls may start; ``end`` before
    ``start`` spans midnight. ``time_zone`` is an IANA name, or ``"destination"``: the zone
    of each destination's number."""

    start: time
    end: time
    time_zone: str


@dataclass(frozen=True)
class CallingWindow:
    """When a request's calls may start: not before, not after (aware datetimes), daily hours."""

    not_before: datetime | None = None
    not_after: datetime | None = None
    daily: DailyWindow | None = None


@dataclass(frozen=True)
class LinesChange:
    """An operator's change of an organization's lines: count, pace and/or line rule."""

    max_concurrent_calls: int | None = None
    cps: float | None = None
    line_rule: tuple[str, str] | None = None  # (channel variable, value) marking its lines

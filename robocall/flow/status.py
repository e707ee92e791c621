"""What robocall knows of a request, a call and a step, as enums: the one status vocabulary.

The flow machine, the call runner, the dispatcher and the store all speak in these members.
Their values are storage codes — what the store writes in its status columns and step records —
and nothing else: the strings a client reads are chosen in ``robocall.api.contract`` alone, so
a change of the wire format is a change of that one file, never a data migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RequestStatus(StrEnum):
    """A request: stored, dialling, every call final, or cancelled by its client."""

    SUBMITTED = "submitted"
    ON_PROGRESS = "onProgress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CallStatus(StrEnum):
    """A call: ``queued`` -> ``dialing`` -> ``onProgress`` (answered) -> ``completed``
    (answered, flow done) | ``failed`` (never answered, or robocall could not deliver its
    message) | ``cancelled`` (never dialled: the request was cancelled or its window closed)."""

    QUEUED = "queued"
    DIALING = "dialing"
    ON_PROGRESS = "onProgress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_CALL_STATUSES = frozenset({CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELLED})


class DialResult(StrEnum):
    """How a dialled leg ended up: the robo call (``call_status``) or a transfer's other leg
    (``transfer_status``)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


class StepName(StrEnum):
    """The kind of a step of the call flow."""

    PLAY = "play"
    GATHER = "gather"
    TRANSFER = "transfer"


class CallState(StrEnum):
    """Whether the call goes on after a step."""

    ONGOING = "ongoing"
    ENDED = "ended"


class StepStatus(StrEnum):
    """How one step ended — or ``RUNNING`` for a step reported while it runs (a transfer)."""

    RUNNING = "running"
    SUCCESS_OK = "success_ok"
    ERROR_NO_INPUT = "error_no_input"
    ERROR_INVALID_INPUT = "error_invalid_input"
    ERROR_HANGUP = "error_hangup"
    ERROR_PLAYBACK = "error_playback"
    ERROR_TRANSFER_FAILED = "error_transfer_failed"
    ERROR_NOT_ANSWERED = "error_not_answered"  # the call was never answered: no step ran


class LegKind(StrEnum):
    """Which FreeSWITCH leg of a call: the robo call itself, or a transfer's other party."""

    CALL = "call"
    TRANSFER = "transfer"


@dataclass(frozen=True)
class Leg:
    """One FreeSWITCH channel of a call: its uuid (for ``uuid_dump``), kind and destination."""

    uuid: str
    kind: LegKind
    dest: str
    switch: str = ""  # the pool's switch the channel is on ("": robocall has one)

"""What to do on a call: the actions a flow machine returns for the call runner to carry out.

``Machine.feed(event)`` returns a list of these, to be executed in order. Three kinds:

- commands for the switch: :class:`StartRecording`, :class:`PlayPrompt`,
  :class:`CollectDigits`, :class:`Bridge`, :class:`Hangup` — each step action is answered by
  exactly one completion event (``PromptFinished``, ``DigitsCollected``, ``BridgeFinished``);
- :class:`StepResult`: one entry of the call's step report, to be stored;
- :class:`CallFinished`: the machine is done; the call's final status.

Order inside one list: the finished step's ``StepResult`` first, then the next step's command;
when the call ends: ``StepResult``, ``Hangup`` (unless the callee already hung up),
``CallFinished`` last. Message texts are the submitted templates: the runner renders them per
destination (``robocall.flow.templates``) and plays the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from robocall.flow.model import Message, Transfer
from robocall.flow.status import CallState, CallStatus, DialResult, StepName, StepStatus

__all__ = ["CallState", "CallStatus", "DialResult", "StepName", "StepStatus"]  # re-exported

# The cause robocall gives FreeSWITCH whenever it ends a call itself.
NORMAL_CLEARING = "NORMAL_CLEARING"


class FinishReason(StrEnum):
    """Why the machine finished, in one word (for logs, metrics and the status mapping)."""

    FLOW_DONE = "flow_done"  # the steps ran out; robocall hung up
    TRANSFER_DONE = "transfer_done"  # a transfer was answered and its bridge ended
    CALLEE_HANGUP = "callee_hangup"
    NO_INPUT = "no_input"
    INVALID_INPUT = "invalid_input"
    TRANSFER_FAILED = "transfer_failed"
    PLAYBACK_ERROR = "playback_error"
    NOT_ANSWERED = "not_answered"


@dataclass(frozen=True)
class StartRecording:
    """Record the call, both parties, until it hangs up (``enableCallRecording``)."""


@dataclass(frozen=True)
class PlayPrompt:
    """Play ``message`` (step ``step_id``); answered by ``PromptFinished``."""

    step_id: str
    message: Message


@dataclass(frozen=True)
class CollectDigits:
    """Play ``message`` and collect digits once; answered by ``DigitsCollected``.

    One try per action: the machine counts tries (``attempt`` is 1-based, at most
    ``max_attempts``) and decides what the input means, because "input matching no branch is a
    failed try" is robocall's rule. So the runner collects with a single try and a pattern that
    accepts any keys. ``terminators`` is ``"#"``, or ``""`` when a branch's digits use ``#``.
    """

    step_id: str
    message: Message
    min_digits: int
    max_digits: int
    timeout_ms: int
    digit_timeout_ms: int
    terminators: str
    attempt: int
    max_attempts: int


@dataclass(frozen=True)
class Bridge:
    """Bridge the call to ``transfer`` (step ``step_id``); answered by ``BridgeFinished``."""

    step_id: str
    transfer: Transfer


@dataclass(frozen=True)
class Hangup:
    """Hang the robo leg up with ``cause``."""

    cause: str = NORMAL_CLEARING


@dataclass(frozen=True)
class StepResult:
    """One entry of the call's step report: how step ``step_id`` ended (or, with status
    ``RUNNING``, how far a running transfer has got; its final result replaces it).

    ``user_pressed_digits`` (gather only) is the input of the last completed try: the digits
    that chose a branch, or the last invalid input, or ``""`` when the last try had none (or a
    hangup came before any try completed); earlier tries' input is not kept. ``transfer_status``
    is set for a transfer that got an outcome (not for one cut by a hangup while ringing).
    ``call_status`` is ``answered`` for every step that ran; a call never answered reports one
    result for its first step, ``ERROR_NOT_ANSWERED`` with how the dial ended.
    ``attempts`` (gather only) is how many tries ran — an extension a B3 client ignores.
    Typed values only: ``robocall.api.contract`` alone turns them into the client's JSON.
    """

    step_id: str
    step_name: StepName
    status: StepStatus
    call_state: CallState
    call_status: DialResult = DialResult.ANSWERED
    user_pressed_digits: str | None = None
    transfer_status: DialResult | None = None
    attempts: int | None = None

    @property
    def final(self) -> bool:
        """Whether the step is over (not a running transfer's progress)."""
        return self.status is not StepStatus.RUNNING


@dataclass(frozen=True)
class CallFinished:
    """The machine is done: the call's final ``status`` and why.

    ``cause`` is FreeSWITCH's hangup cause when the switch reported the end (``CallFailed``,
    ``CalleeHungUp``), ``""`` when robocall ended the call itself (with :data:`NORMAL_CLEARING`).
    """

    status: CallStatus  # completed or failed
    reason: FinishReason
    cause: str = ""


Action = StartRecording | PlayPrompt | CollectDigits | Bridge | Hangup | StepResult | CallFinished

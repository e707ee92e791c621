"""What to do on a call: the actions a flow machine returns for the call runner to carry out.

``Machine.feed(event)`` returns a list of these, to be executed in order. Three kinds:

- commands for the switch: :class:`StartRecording`, :class:`PlayPrompt`,
  :class:`CollectDigits`, :class:`Bridge`, :class:`Hangup` — each step action is answered by
  exactly one completion event (``PromptFinished``, ``DigitsCollected``, ``BridgeFinished``);
- :class:`StepResult`: one entry of the call's ``callFlowSteps``, to be stored;
- :class:`CallFinished`: the machine is done; the call's final status.

Order inside one list: the finished step's ``StepResult`` first, then the next step's command;
when the call ends: ``StepResult``, ``Hangup`` (unless the callee already hung up),
``CallFinished`` last. Message texts are the submitted templates: the runner renders them per
destination (``robocall.flow.templates``) and plays the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from robocall.flow.events import TransferStatus
from robocall.flow.model import Message, Transfer

# The cause robocall gives FreeSWITCH whenever it ends a call itself.
NORMAL_CLEARING = "NORMAL_CLEARING"


class StepName(StrEnum):
    """``stepName`` in the status."""

    PLAY = "play"
    GATHER = "gather"
    TRANSFER = "transfer"


class CallState(StrEnum):
    """``info.call_state``: whether the call goes on after this step."""

    ONGOING = "ongoing"
    ENDED = "ended"


class CallStatus(StrEnum):
    """``info.call_status``. A step only runs on an answered call, so a ``StepResult`` always
    says ``answered``; the other values describe calls that ran no step (the status mapping
    reports those from :class:`CallFinished`)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


class StepStatus(StrEnum):
    """``info.status``: how one step ended."""

    SUCCESS_OK = "success_ok"
    ERROR_NO_INPUT = "error_no_input"
    ERROR_INVALID_INPUT = "error_invalid_input"
    ERROR_HANGUP = "error_hangup"
    ERROR_PLAYBACK = "error_playback"
    ERROR_TRANSFER_FAILED = "error_transfer_failed"


class CallOutcome(StrEnum):
    """The call's final status. ``completed``: answered, and the flow ended for a reason the
    callee or the flow decided (including a hangup, no input, a failed transfer). ``failed``:
    never answered, or robocall could not play a message."""

    COMPLETED = "completed"
    FAILED = "failed"


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
    """One entry of ``callFlowSteps``: how step ``step_id`` ended.

    ``user_pressed_digits`` (gather only) is the input of the last completed try: the digits
    that chose a branch, or the last invalid input, or ``""`` when the last try had none (or a
    hangup came before any try completed); earlier tries' input is not kept. ``transfer_status``
    is set for a transfer that got an outcome (not for one cut by a hangup while ringing).
    ``attempts`` (gather only) is how many tries ran — an extension a B3 client ignores.
    """

    step_id: str
    step_name: StepName
    status: StepStatus
    call_state: CallState
    call_status: CallStatus = CallStatus.ANSWERED
    user_pressed_digits: str | None = None
    transfer_status: TransferStatus | None = None
    attempts: int | None = None

    def info(self) -> dict[str, str]:
        """The ``info`` object of the status entry. Keys that do not apply to this step hold
        ``""``, so a client reading any key always finds a string."""
        return {
            "call_state": self.call_state.value,
            "call_status": self.call_status.value,
            "status": self.status.value,
            "userPressedDigits": self.user_pressed_digits or "",
            "transfer_status": self.transfer_status.value if self.transfer_status else "",
        }

    def as_status_entry(self) -> dict[str, object]:
        """This result as one ``callFlowSteps`` entry of the B3 status."""
        return {"stepName": self.step_name.value, "info": self.info()}


@dataclass(frozen=True)
class CallFinished:
    """The machine is done: the call's final ``status`` and why.

    ``cause`` is FreeSWITCH's hangup cause when the switch reported the end (``CallFailed``,
    ``CalleeHungUp``), ``""`` when robocall ended the call itself (with :data:`NORMAL_CLEARING`).
    """

    status: CallOutcome
    reason: FinishReason
    cause: str = ""


Action = StartRecording | PlayPrompt | CollectDigits | Bridge | Hangup | StepResult | CallFinished

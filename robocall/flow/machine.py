"""The call-flow state machine: one per call, sans-IO, ``machine.feed(event) -> [actions]``.

In the manner of h11's ``_state.py``: the states are an Enum, every legal (state, event type)
pair is one row of :data:`TRANSITIONS` together with the states it may lead to, and any other
event raises :class:`robocall.errors.FlowError` — leaving the machine as it was, so the runner
can log the stray event and go on. The runner does all I/O: it turns ESL frames into events
(``robocall.flow.events``) and carries out the returned actions (``robocall.flow.actions``).

States::

    IDLE --CallAnswered--> ANSWERED --CallReady--> (first step)
    IDLE --CallReady--> (first step)          IDLE --CallFailed--> ENDED
    PLAYING   --PromptFinished--> (next step) | ENDED
    GATHERING --DigitsCollected--> GATHERING (another try) | (branch's first step) | ENDED
    BRIDGING  --Bridged--> BRIDGED;  BRIDGING/BRIDGED --BridgeFinished--> ENDED
    ANSWERED/PLAYING/GATHERING/BRIDGING/BRIDGED --CalleeHungUp--> ENDED
    ENDED --CalleeHungUp--> ENDED; ENDED --(late completion, once)--> ENDED

"(step)" is PLAYING, GATHERING or BRIDGING by the step's kind, or ENDED when the flow has no
more steps (robocall hangs up normally).

Rules carried out here (docs/design.md, "Contract decisions"):

- play: success moves on; ``PromptFinished(ok=False)`` ends the call with ``error_playback``
  and the call ``failed`` (robocall could not deliver its message).
- gather: input equal to a branch's digits runs that branch; other input runs the default
  branch, or is a failed try when there is none; no input is a failed try. A failed try
  before the last one asks again (a new ``CollectDigits``, no result yet). After the last try
  fails: the default branch if any — step status ``error_no_input``, ``call_state``
  ``ongoing`` (with a default branch only empty input can fail a try) — else the call ends
  with ``error_no_input`` (the last try had no input) or ``error_invalid_input``.
  ``userPressedDigits`` is the last completed try's input in every case.
- transfer: reported ``RUNNING`` (``call_state`` ongoing) when it starts and again when the
  person answers; ``BridgeFinished(answered)`` ends the call ``success_ok``; busy, no answer
  and failure give ``error_transfer_failed`` with that ``transfer_status``; robocall then
  hangs up.
- a call never answered (``CallFailed``) reports one result for its first step,
  ``error_not_answered`` with ``call_status`` busy, no_answer or failed by the hangup cause.
- a hangup of the callee ends the running step with ``error_hangup`` — except while bridged
  to a person (after ``Bridged``), where it ends a successful transfer.
- each step run yields exactly one final ``StepResult``; the machine ends with one
  ``CallFinished``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar

from robocall.errors import FlowError
from robocall.flow.actions import (
    Action,
    Bridge,
    CallFinished,
    CallState,
    CallStatus,
    CollectDigits,
    FinishReason,
    Hangup,
    PlayPrompt,
    StartRecording,
    StepName,
    StepResult,
    StepStatus,
)
from robocall.flow.compile import (
    GatherNode,
    Node,
    PlayNode,
    Program,
    StepMessage,
    Target,
    TransferNode,
)
from robocall.flow.events import (
    Bridged,
    BridgeFinished,
    CallAnswered,
    CalleeHungUp,
    CallFailed,
    CallReady,
    DigitsCollected,
    Event,
    PromptFinished,
)
from robocall.flow.schedule import retry_outcome
from robocall.flow.status import DialResult

_N = TypeVar("_N", PlayNode, GatherNode, TransferNode)


class State(Enum):
    """Where a call's flow is."""

    IDLE = "idle"  # dialled, not answered
    ANSWERED = "answered"  # answered, not yet parked: nothing may be sent
    PLAYING = "playing"  # a PlayPrompt is out
    GATHERING = "gathering"  # a CollectDigits try is out
    BRIDGING = "bridging"  # a Bridge is out, the person has not answered
    BRIDGED = "bridged"  # the callee is talking to the person
    ENDED = "ended"  # CallFinished was emitted


class Machine:
    """The flow of one call. ``record``: start recording when the flow starts."""

    def __init__(self, program: Program, *, record: bool) -> None:
        self._program = program
        self._record = record
        self._state = State.IDLE
        self._node: Node | None = None
        self._attempt = 0
        self._last_input = ""
        # The completion the switch still owes for an action cut short by a hangup.
        self._owed_completion: type[Event] | None = None

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def step_id(self) -> str | None:
        """The id of the step running (or that ran last), ``None`` before the first."""
        return self._node.step_id if self._node else None

    @property
    def attempt(self) -> int:
        """The number of the gather try that is out (1-based); 0 outside a gather."""
        return self._attempt if self._state is State.GATHERING else 0

    @property
    def finished(self) -> bool:
        """Whether ``CallFinished`` was emitted."""
        return self._state is State.ENDED

    def legal_events(self) -> frozenset[type[Event]]:
        """The event types :meth:`feed` accepts now."""
        if self._state is State.ENDED:
            # of the late completions in the table, only the one a hangup left owed
            owed = {self._owed_completion} if self._owed_completion else set()
            return frozenset({CalleeHungUp} | owed)
        return frozenset(event for (state, event) in TRANSITIONS if state is self._state)

    def feed(self, event: Event) -> list[Action]:
        """Advance on ``event``; return the actions to carry out, in order.

        Raises :class:`FlowError` for an event that is illegal in the current state; the
        machine is then unchanged.
        """
        transition = TRANSITIONS.get((self._state, type(event)))
        if transition is None:
            raise self._illegal(event)
        actions = transition.handler(self, event)
        if self._state not in transition.targets:
            raise AssertionError(f"{self._state} is not a target of {transition}")
        return actions

    def upcoming_messages(self) -> list[StepMessage]:
        """Messages that may play after what is playing now, nearest first.

        Before the flow starts this begins with the first step's message (render it at
        dispatch); while a step plays, it lists what may follow, so the runner can render
        ahead. A gather's own message is not repeated: its retries replay the same audio.
        """
        if self._state in (State.IDLE, State.ANSWERED):
            return self._program.messages_after((self._program.entry,))
        if self._state in (State.PLAYING, State.GATHERING) and self._node is not None:
            return self._program.messages_after(self._program.successors(self._node.step_id))
        return []

    # --- handlers, one per row of TRANSITIONS ------------------------------------------------

    def _on_answered(self, event: CallAnswered) -> list[Action]:
        self._state = State.ANSWERED
        return []

    def _on_ready(self, event: CallReady) -> list[Action]:
        entry = self._program.entry
        start: list[Action] = [StartRecording()] if self._record and entry is not None else []
        return start + self._enter(entry)

    def _on_failed(self, event: CallFailed) -> list[Action]:
        self._state = State.ENDED
        finished = CallFinished(CallStatus.FAILED, FinishReason.NOT_ANSWERED, event.cause)
        entry = self._program.entry
        if entry is None:
            return [finished]
        # No step ran, but the report says why: one result for the step that would have.
        node = self._program.node(entry)
        outcome = retry_outcome(event.cause)
        not_answered = StepResult(
            step_id=node.step_id,
            step_name=_STEP_NAME[type(node)],
            status=StepStatus.ERROR_NOT_ANSWERED,
            call_state=CallState.ENDED,
            call_status=DialResult(outcome.value) if outcome is not None else DialResult.FAILED,
        )
        return [not_answered, finished]

    def _on_hangup_before_start(self, event: CalleeHungUp) -> list[Action]:
        self._state = State.ENDED
        return [CallFinished(CallStatus.COMPLETED, FinishReason.CALLEE_HANGUP, event.cause)]

    def _on_prompt_finished(self, event: PromptFinished) -> list[Action]:
        node = self._running(PlayNode)
        if not event.ok:
            return self._end(
                self._result(StepStatus.ERROR_PLAYBACK, None),
                CallStatus.FAILED,
                FinishReason.PLAYBACK_ERROR,
            )
        return [self._result(StepStatus.SUCCESS_OK, node.next_id)] + self._enter(node.next_id)

    def _on_digits(self, event: DigitsCollected) -> list[Action]:
        node = self._running(GatherNode)
        digits = event.digits
        self._last_input = digits
        matched, target = node.route(digits)
        if matched:
            return [self._result(StepStatus.SUCCESS_OK, target)] + self._enter(target)
        if self._attempt < node.max_attempts:
            self._attempt += 1
            return [self._collect(node)]
        if node.has_default:
            target = node.default_target
            return [self._result(StepStatus.ERROR_NO_INPUT, target)] + self._enter(target)
        if digits:
            status, reason = StepStatus.ERROR_INVALID_INPUT, FinishReason.INVALID_INPUT
        else:
            status, reason = StepStatus.ERROR_NO_INPUT, FinishReason.NO_INPUT
        return self._end(self._result(status, None), CallStatus.COMPLETED, reason)

    def _on_bridged(self, event: Bridged) -> list[Action]:
        self._running(TransferNode)
        self._state = State.BRIDGED
        return [self._transfer_running(DialResult.ANSWERED)]

    def _on_bridge_finished(self, event: BridgeFinished) -> list[Action]:
        self._running(TransferNode)
        outcome = event.outcome
        if self._state is State.BRIDGED and outcome is not DialResult.ANSWERED:
            raise self._illegal(event, f"outcome {outcome.value} after the bridge was up")
        if outcome is DialResult.ANSWERED:
            status, reason = StepStatus.SUCCESS_OK, FinishReason.TRANSFER_DONE
        else:
            status, reason = StepStatus.ERROR_TRANSFER_FAILED, FinishReason.TRANSFER_FAILED
        result = self._result(status, None, transfer_status=outcome)
        return self._end(result, CallStatus.COMPLETED, reason)

    def _on_hangup_in_step(self, event: CalleeHungUp) -> list[Action]:
        if self._state is State.BRIDGED:
            result = self._result(
                StepStatus.SUCCESS_OK, None, transfer_status=DialResult.ANSWERED
            )
        else:
            result = self._result(StepStatus.ERROR_HANGUP, None)
        self._owed_completion = _COMPLETION_OF[self._state]
        self._state = State.ENDED
        finished = CallFinished(CallStatus.COMPLETED, FinishReason.CALLEE_HANGUP, event.cause)
        return [result, finished]

    def _on_hangup_after_end(self, event: CalleeHungUp) -> list[Action]:
        return []

    def _on_late_completion(self, event: Event) -> list[Action]:
        owed = self._owed_completion
        if type(event) is not owed:
            raise self._illegal(event, f"owed after the hangup: {owed.__name__ if owed else None}")
        self._owed_completion = None
        return []

    # --- helpers ----------------------------------------------------------------------------

    def _enter(self, target: Target) -> list[Action]:
        """Start step ``target``, or hang up normally when the flow has run out."""
        if target is None:
            self._state = State.ENDED
            return [Hangup(), CallFinished(CallStatus.COMPLETED, FinishReason.FLOW_DONE)]
        node = self._program.node(target)
        self._node = node
        if isinstance(node, PlayNode):
            self._state = State.PLAYING
            return [PlayPrompt(node.step_id, node.message)]
        if isinstance(node, GatherNode):
            self._state = State.GATHERING
            self._attempt = 1
            self._last_input = ""
            return [self._collect(node)]
        self._state = State.BRIDGING
        return [self._transfer_running(None), Bridge(node.step_id, node.transfer)]

    def _transfer_running(self, transfer_status: DialResult | None) -> StepResult:
        """The running transfer as far as it has got: reported while it rings and while the
        callee talks to the person, replaced by its final result when it ends."""
        node = self._running(TransferNode)
        return StepResult(
            step_id=node.step_id,
            step_name=StepName.TRANSFER,
            status=StepStatus.RUNNING,
            call_state=CallState.ONGOING,
            transfer_status=transfer_status,
        )

    def _end(self, result: StepResult, outcome: CallStatus, reason: FinishReason) -> list[Action]:
        """Robocall ends the call after ``result``."""
        self._state = State.ENDED
        return [result, Hangup(), CallFinished(outcome, reason)]

    def _collect(self, node: GatherNode) -> CollectDigits:
        return CollectDigits(
            step_id=node.step_id,
            message=node.message,
            min_digits=node.min_digits,
            max_digits=node.max_digits,
            timeout_ms=node.timeout_ms,
            digit_timeout_ms=node.digit_timeout_ms,
            terminators=node.terminators,
            attempt=self._attempt,
            max_attempts=node.max_attempts,
        )

    def _result(
        self,
        status: StepStatus,
        then: Target,
        *,
        transfer_status: DialResult | None = None,
    ) -> StepResult:
        """The result of the running step; ``then`` is where the flow goes next (``None``:
        the call ends with this step)."""
        node = self._node
        if node is None:
            raise AssertionError("no step is running")
        is_gather = isinstance(node, GatherNode)
        return StepResult(
            step_id=node.step_id,
            step_name=_STEP_NAME[type(node)],
            status=status,
            call_state=CallState.ONGOING if then is not None else CallState.ENDED,
            user_pressed_digits=self._last_input if is_gather else None,
            transfer_status=transfer_status,
            attempts=self._attempt if is_gather else None,
        )

    def _running(self, kind: type[_N]) -> _N:
        node = self._node
        if not isinstance(node, kind):
            raise AssertionError(f"state {self._state.name} without a {kind.__name__} running")
        return node

    def _illegal(self, event: Event, why: str = "") -> FlowError:
        where = f" at step {self.step_id}" if self.step_id else ""
        detail = f": {why}" if why else ""
        return FlowError(
            f"{type(event).__name__} is illegal in state {self._state.name}{where}{detail}"
        )


_STEP_NAME: Mapping[type[Node], StepName] = MappingProxyType(
    {PlayNode: StepName.PLAY, GatherNode: StepName.GATHER, TransferNode: StepName.TRANSFER}
)

# The completion event each running state waits for.
_COMPLETION_OF: Mapping[State, type[Event]] = MappingProxyType(
    {
        State.PLAYING: PromptFinished,
        State.GATHERING: DigitsCollected,
        State.BRIDGING: BridgeFinished,
        State.BRIDGED: BridgeFinished,
    }
)


@dataclass(frozen=True)
class Transition:
    """One legal (state, event type): what runs, and the states it may leave the machine in."""

    handler: Callable[[Machine, Any], list[Action]]
    targets: frozenset[State]


# Entering a step leaves the machine in that step's state, or ENDED when the flow ran out.
_STEP_STATES = frozenset({State.PLAYING, State.GATHERING, State.BRIDGING, State.ENDED})
_ENDED = frozenset({State.ENDED})

TRANSITIONS: Mapping[tuple[State, type[Event]], Transition] = MappingProxyType(
    {
        (State.IDLE, CallAnswered): Transition(Machine._on_answered, frozenset({State.ANSWERED})),
        (State.IDLE, CallReady): Transition(Machine._on_ready, _STEP_STATES),
        (State.IDLE, CallFailed): Transition(Machine._on_failed, _ENDED),
        (State.ANSWERED, CallReady): Transition(Machine._on_ready, _STEP_STATES),
        (State.ANSWERED, CalleeHungUp): Transition(Machine._on_hangup_before_start, _ENDED),
        (State.PLAYING, PromptFinished): Transition(Machine._on_prompt_finished, _STEP_STATES),
        (State.PLAYING, CalleeHungUp): Transition(Machine._on_hangup_in_step, _ENDED),
        (State.GATHERING, DigitsCollected): Transition(Machine._on_digits, _STEP_STATES),
        (State.GATHERING, CalleeHungUp): Transition(Machine._on_hangup_in_step, _ENDED),
        (State.BRIDGING, Bridged): Transition(Machine._on_bridged, frozenset({State.BRIDGED})),
        (State.BRIDGING, BridgeFinished): Transition(Machine._on_bridge_finished, _ENDED),
        (State.BRIDGING, CalleeHungUp): Transition(Machine._on_hangup_in_step, _ENDED),
        (State.BRIDGED, BridgeFinished): Transition(Machine._on_bridge_finished, _ENDED),
        (State.BRIDGED, CalleeHungUp): Transition(Machine._on_hangup_in_step, _ENDED),
        (State.ENDED, CalleeHungUp): Transition(Machine._on_hangup_after_end, _ENDED),
        # Legal once, and only for the action a hangup cut short (FreeSWITCH completes it
        # after CHANNEL_HANGUP); FlowError otherwise.
        (State.ENDED, PromptFinished): Transition(Machine._on_late_completion, _ENDED),
        (State.ENDED, DigitsCollected): Transition(Machine._on_late_completion, _ENDED),
        (State.ENDED, BridgeFinished): Transition(Machine._on_late_completion, _ENDED),
    }
)

"""Flows and expected actions for the flow-machine tests, spelled out so rows read plainly."""

from __future__ import annotations

from robocall.flow.actions import (
    Action,
    CallFinished,
    CallState,
    CallStatus,
    CollectDigits,
    DialResult,
    FinishReason,
    Hangup,
    PlayPrompt,
    StepName,
    StepResult,
    StepStatus,
)
from robocall.flow.compile import compile_flow
from robocall.flow.events import CallReady, Event, PromptFinished, TransferStatus
from robocall.flow.machine import Machine
from robocall.flow.model import CallFlow, Message
from tests.support.flows import branch, flow, gather, play, to_extension

# --- flows the rows run ---------------------------------------------------------------------

PLAY_PLAY = flow(play("hello"), play("bye"))
PLAY_GATHER = flow(play("hello"), gather("ask", branch("1", flow(play("one")))))
PLAY_TRANSFER = flow(play("hello"), to_extension("1000"))
TRANSFER = flow(to_extension("1000"))
EMPTY = flow()
# Two tries, no default: "1" plays, "2" asks again in a nested gather, "0" transfers, "9" ends.
GATHER = flow(
    gather(
        "ask",
        branch("1", flow(play("one"))),
        branch("2", flow(gather("again", branch("3", flow(play("three")))))),
        branch("0", flow(to_extension("1000"))),
        branch("9", flow()),
        max_retries=2,
    )
)
GATHER_DEFAULT = flow(
    gather(
        "ask",
        branch("1", flow(play("one"))),
        branch(None, flow(play("other")), default=True),
        max_retries=2,
    )
)
MULTI_KEY = flow(gather("ask", branch("12", flow(play("twelve"))), branch("#3", flow())))

EXTENSION = to_extension("1000")
BUSY = "USER_BUSY"
CLEARING = "NORMAL_CLEARING"


# --- expected actions, spelled out -------------------------------------------------------------


def say(step_id: str, text: str) -> PlayPrompt:
    return PlayPrompt(step_id, Message(text))


def ask(
    step_id: str,
    text: str,
    attempt: int = 1,
    *,
    max_attempts: int = 2,
    max_digits: int = 1,
    terminators: str = "#",
) -> CollectDigits:
    return CollectDigits(
        step_id=step_id,
        message=Message(text),
        min_digits=1,
        max_digits=max_digits,
        timeout_ms=5000,
        digit_timeout_ms=3000,
        terminators=terminators,
        attempt=attempt,
        max_attempts=max_attempts,
    )


def played(
    step_id: str, status: StepStatus = StepStatus.SUCCESS_OK, *, ended: bool = False
) -> StepResult:
    return StepResult(
        step_id, StepName.PLAY, status, CallState.ENDED if ended else CallState.ONGOING
    )


def gathered(
    step_id: str, status: StepStatus, digits: str, attempts: int, *, ended: bool = False
) -> StepResult:
    return StepResult(
        step_id,
        StepName.GATHER,
        status,
        CallState.ENDED if ended else CallState.ONGOING,
        user_pressed_digits=digits,
        attempts=attempts,
    )


def transferred(
    step_id: str, status: StepStatus, transfer_status: TransferStatus | None
) -> StepResult:
    return StepResult(
        step_id, StepName.TRANSFER, status, CallState.ENDED, transfer_status=transfer_status
    )


def ringing(step_id: str, transfer_status: TransferStatus | None = None) -> StepResult:
    """A transfer reported while it runs (``transfer_status`` answered once bridged)."""
    return StepResult(
        step_id,
        StepName.TRANSFER,
        StepStatus.RUNNING,
        CallState.ONGOING,
        transfer_status=transfer_status,
    )


def not_answered(step_id: str, name: StepName, call_status: DialResult) -> StepResult:
    """The one result of a call that was never answered, for the step that would have run."""
    return StepResult(
        step_id, name, StepStatus.ERROR_NOT_ANSWERED, CallState.ENDED, call_status=call_status
    )


def finished(reason: FinishReason, cause: str = "") -> CallFinished:
    outcome = (
        CallStatus.FAILED
        if reason in (FinishReason.NOT_ANSWERED, FinishReason.PLAYBACK_ERROR)
        else CallStatus.COMPLETED
    )
    return CallFinished(outcome, reason, cause)


FLOW_DONE: list[Action] = [Hangup(), finished(FinishReason.FLOW_DONE)]
OK = StepStatus.SUCCESS_OK
NO_INPUT = StepStatus.ERROR_NO_INPUT
AFTER_HELLO = (CallReady(), PromptFinished(ok=True))  # the parked call played its "hello"


def machine_after(the_flow: CallFlow, given: tuple[Event, ...], *, record: bool = False) -> Machine:
    """A machine for ``the_flow`` that was fed ``given``."""
    machine = Machine(compile_flow(the_flow), record=record)
    for event in given:
        machine.feed(event)
    return machine


def snapshot(machine: Machine) -> tuple[object, ...]:
    """What a refused event must leave unchanged."""
    return (machine.state, machine.step_id, machine.attempt, machine.legal_events())

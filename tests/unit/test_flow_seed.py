"""The seed's example callFlow (tests/support/seed_example_request.json) end to end.

Each test plays one callee through the whole call and checks what the switch is told to do,
the ``callFlowSteps`` the status would show (in the B3 shape), and how the call finishes.

The seed: play "thanks {{name}}"; gather "Dear Mr {{name}}, ..." with branch "1" (a nested
gather whose only branch is the default, then a play) and branch "0", which is also the
default (a transfer to Ext:1000).
"""

from __future__ import annotations

from dataclasses import dataclass

from robocall.api.contract import step_entry
from robocall.flow.actions import (
    Action,
    Bridge,
    CallFinished,
    CallStatus,
    CollectDigits,
    FinishReason,
    Hangup,
    PlayPrompt,
    StartRecording,
    StepResult,
)
from robocall.flow.compile import compile_flow
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
    TransferStatus,
)
from robocall.flow.machine import Machine, State
from robocall.store.call_report import step_from_record, with_step
from tests.support.flows import SEED_FIRST, SEED_FLOW

PROGRAM = compile_flow(SEED_FLOW)  # once, shared by every call below, as in production
CLEARING = "NORMAL_CLEARING"
START = (CallAnswered(), CallReady(), PromptFinished(ok=True))  # answered, "thanks" played


@dataclass
class Call:
    """What one call did: the commands sent, the status entries stored, how it finished."""

    commands: list[str]
    steps: list[dict[str, object]]
    finished: CallFinished | None
    machine: Machine


def run_call(*events: Event, record: bool = True) -> Call:
    """Feed ``events`` to a fresh machine of the seed program; collect what came out."""
    machine = Machine(PROGRAM, record=record)
    actions: list[Action] = []
    for event in events:
        actions.extend(machine.feed(event))
    finished = [a for a in actions if isinstance(a, CallFinished)]
    assert len(finished) <= 1
    return Call(
        commands=[describe(a) for a in actions if not isinstance(a, StepResult | CallFinished)],
        steps=status_entries([a for a in actions if isinstance(a, StepResult)]),
        finished=finished[0] if finished else None,
        machine=machine,
    )


def status_entries(results: list[StepResult]) -> list[dict[str, object]]:
    """The results as the status shows them: kept as the store keeps them (a running
    transfer's final result replaces its progress), in the contract's JSON."""
    records: list[dict[str, object]] = []
    for result in results:
        records = with_step(records, result)
    return [step_entry(step_from_record(record)) for record in records]


def describe(action: Action) -> str:
    """A command in one short line, to compare whole sequences at a glance."""
    if isinstance(action, PlayPrompt):
        return f"play {action.step_id} {action.message.text!r}"
    if isinstance(action, CollectDigits):
        return f"collect {action.step_id} try {action.attempt}/{action.max_attempts}"
    if isinstance(action, Bridge):
        return f"bridge {action.step_id} {action.transfer.kind.value}:{action.transfer.target}"
    if isinstance(action, Hangup):
        return f"hangup {action.cause}"
    assert isinstance(action, StartRecording)
    return "record"


def entry(
    name: str, status: str, state: str = "ongoing", digits: str = "", transfer: str = ""
) -> dict[str, object]:
    """One ``callFlowSteps`` entry as the B3 status shows it."""
    return {
        "stepName": name,
        "info": {
            "call_state": state,
            "call_status": "answered",
            "status": status,
            "userPressedDigits": digits,
            "transfer_status": transfer,
        },
    }


THANKS = entry("play", "sucess_ok")
THANKS_COMMANDS = ["record", "play 1 'thanks {{name}}'", "collect 2 try 1/3"]


def completed(reason: FinishReason, cause: str = "") -> CallFinished:
    return CallFinished(CallStatus.COMPLETED, reason, cause)


def test_press_1_then_anything_takes_the_nested_default_and_ends_normally() -> None:
    # when the callee presses 1, then 5 at the nested gather, and the last message plays
    call = run_call(*START, DigitsCollected("1"), DigitsCollected("5"), PromptFinished(ok=True))

    # then the nested gather's only (default) branch ran, and robocall hung up
    assert call.commands == [
        *THANKS_COMMANDS,
        "collect 2.b1.1 try 1/3",
        "play 2.b1.1.b1.1 'msg need to play'",
        "hangup NORMAL_CLEARING",
    ]
    assert call.steps == [
        THANKS,
        entry("gather", "sucess_ok", digits="1"),
        entry("gather", "sucess_ok", digits="5"),
        entry("play", "sucess_ok", state="ended"),
    ]
    assert call.finished == completed(FinishReason.FLOW_DONE)


def test_press_1_then_no_input_three_times_takes_the_nested_default() -> None:
    # when the callee presses 1, then nothing at the three tries of the nested gather
    call = run_call(
        *START,
        DigitsCollected("1"),
        DigitsCollected(""),
        DigitsCollected(""),
        DigitsCollected(""),
        PromptFinished(ok=True),
    )

    # then the nested gather asked three times, reported no input, and went to its default
    assert call.commands == [
        *THANKS_COMMANDS,
        "collect 2.b1.1 try 1/3",
        "collect 2.b1.1 try 2/3",
        "collect 2.b1.1 try 3/3",
        "play 2.b1.1.b1.1 'msg need to play'",
        "hangup NORMAL_CLEARING",
    ]
    assert call.steps == [
        THANKS,
        entry("gather", "sucess_ok", digits="1"),
        entry("gather", "error_no_input", digits=""),
        entry("play", "sucess_ok", state="ended"),
    ]
    assert call.finished == completed(FinishReason.FLOW_DONE)


def test_press_0_transfers_to_extension_1000_which_answers() -> None:
    # when the callee presses 0, the person answers, talks, and hangs up
    call = run_call(
        *START, DigitsCollected("0"), Bridged(), BridgeFinished(TransferStatus.ANSWERED)
    )

    # then the call was bridged to Ext:1000 and robocall hung the parked robo leg up
    assert call.commands == [
        *THANKS_COMMANDS,
        "bridge 2.b2.1 extension:1000",
        "hangup NORMAL_CLEARING",
    ]
    assert call.steps == [
        THANKS,
        entry("gather", "sucess_ok", digits="0"),
        entry("transfer", "sucess_ok", state="ended", transfer="answered"),
    ]
    assert call.finished == completed(FinishReason.TRANSFER_DONE)


def test_press_0_and_the_callee_ends_the_conversation() -> None:
    call = run_call(*START, DigitsCollected("0"), Bridged(), CalleeHungUp(CLEARING))

    # the callee's hangup after talking to the person is a successful transfer
    assert call.commands == [*THANKS_COMMANDS, "bridge 2.b2.1 extension:1000"]
    assert call.steps[-1] == entry("transfer", "sucess_ok", state="ended", transfer="answered")
    assert call.finished == completed(FinishReason.CALLEE_HANGUP, CLEARING)


def test_press_0_and_extension_1000_is_busy() -> None:
    call = run_call(*START, DigitsCollected("0"), BridgeFinished(TransferStatus.BUSY))

    assert call.commands == [
        *THANKS_COMMANDS,
        "bridge 2.b2.1 extension:1000",
        "hangup NORMAL_CLEARING",
    ]
    assert call.steps[-1] == entry(
        "transfer", "error_transfer_failed", state="ended", transfer="busy"
    )
    assert call.finished == completed(FinishReason.TRANSFER_FAILED)


def test_press_0_and_extension_1000_does_not_answer() -> None:
    call = run_call(*START, DigitsCollected("0"), BridgeFinished(TransferStatus.NO_ANSWER))

    assert call.steps[-1] == entry(
        "transfer", "error_transfer_failed", state="ended", transfer="no_answer"
    )
    assert call.commands[-1] == "hangup NORMAL_CLEARING"
    assert call.finished == completed(FinishReason.TRANSFER_FAILED)


def test_press_9_matches_no_branch_and_takes_the_default_transfer() -> None:
    # "0" is also the default branch in the seed, so any other key transfers at once
    call = run_call(*START, DigitsCollected("9"), BridgeFinished(TransferStatus.ANSWERED))

    assert call.commands == [
        *THANKS_COMMANDS,
        "bridge 2.b2.1 extension:1000",
        "hangup NORMAL_CLEARING",
    ]
    assert call.steps[1] == entry("gather", "sucess_ok", digits="9")
    assert call.finished == completed(FinishReason.TRANSFER_DONE)


def test_no_input_three_times_takes_the_default_transfer() -> None:
    call = run_call(
        *START,
        DigitsCollected(""),
        DigitsCollected(""),
        DigitsCollected(""),
        BridgeFinished(TransferStatus.ANSWERED),
    )

    assert call.commands == [
        *THANKS_COMMANDS,
        "collect 2 try 2/3",
        "collect 2 try 3/3",
        "bridge 2.b2.1 extension:1000",
        "hangup NORMAL_CLEARING",
    ]
    assert call.steps == [
        THANKS,
        entry("gather", "error_no_input", digits=""),
        entry("transfer", "sucess_ok", state="ended", transfer="answered"),
    ]


def test_the_callee_hangs_up_during_the_first_message() -> None:
    # when the callee hangs up while "thanks" plays, and the cut playback completes after
    call = run_call(CallAnswered(), CallReady(), CalleeHungUp(CLEARING), PromptFinished(False))

    # then that step is error_hangup and nothing else is sent
    assert call.commands == ["record", "play 1 'thanks {{name}}'"]
    assert call.steps == [entry("play", "error_hangup", state="ended")]
    assert call.finished == completed(FinishReason.CALLEE_HANGUP, CLEARING)
    assert call.machine.state is State.ENDED


def test_the_callee_does_not_answer() -> None:
    call = run_call(CallFailed("NO_ANSWER"))

    # nothing is sent, and the one entry says why: the first step never ran
    assert call.commands == []
    assert call.steps == [{
        "stepName": "play",
        "info": {
            "call_state": "ended",
            "call_status": "no_answer",
            "status": "error_not_answered",
            "userPressedDigits": "",
            "transfer_status": "",
        },
    }]
    assert call.finished == CallFinished(CallStatus.FAILED, FinishReason.NOT_ANSWERED, "NO_ANSWER")


def test_without_recording_nothing_is_recorded() -> None:
    call = run_call(CallReady(), record=False)

    assert call.commands == ["play 1 'thanks {{name}}'"]


def test_one_program_serves_many_calls_independently() -> None:
    # given two calls of the same request at different points
    first = Machine(PROGRAM, record=False)
    second = Machine(PROGRAM, record=False)
    for event in START:
        first.feed(event)

    # when the second starts, then it is at its own first step, the first at the gather
    assert second.feed(CallReady()) == [PlayPrompt("1", SEED_FIRST)]
    assert (first.state, first.step_id) == (State.GATHERING, "2")

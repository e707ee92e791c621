"""The flow machine's transitions, table-driven: given a state (reached by events), when an
event, then actions and a state. A meta-test holds the rows to TRANSITIONS: every
(state, event type) row and every state it may lead to is exercised here."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from robocall.flow.actions import (
    Action,
    Bridge,
    DialResult,
    FinishReason,
    Hangup,
    StartRecording,
    StepName,
    StepStatus,
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
    TransferStatus,
)
from robocall.flow.machine import TRANSITIONS, State
from robocall.flow.model import CallFlow
from tests.support.flow_expect import (
    AFTER_HELLO,
    BUSY,
    CLEARING,
    EMPTY,
    EXTENSION,
    FLOW_DONE,
    GATHER,
    GATHER_DEFAULT,
    MULTI_KEY,
    NO_INPUT,
    OK,
    PLAY_GATHER,
    PLAY_PLAY,
    PLAY_TRANSFER,
    TRANSFER,
    ask,
    finished,
    gathered,
    machine_after,
    not_answered,
    played,
    ringing,
    say,
    transferred,
)


@dataclass(frozen=True)
class Row:
    """Given ``flow`` fed ``given``, when ``when``, then ``actions`` and ``state``."""

    name: str
    flow: CallFlow
    given: tuple[Event, ...]
    when: Event
    actions: list[Action]
    state: State
    record: bool = False
    step_id: str | None = field(default=None)


READY = (CallReady(),)
IN_GATHER = READY

ROWS = [
    # IDLE
    Row("answered waits for park", PLAY_PLAY, (), CallAnswered(), [], State.ANSWERED),
    Row(
        "ready plays the first step",
        PLAY_PLAY,
        (),
        CallReady(),
        [say("1", "hello")],
        State.PLAYING,
        step_id="1",
    ),
    Row(
        "ready records first when asked",
        PLAY_PLAY,
        (),
        CallReady(),
        [StartRecording(), say("1", "hello")],
        State.PLAYING,
        record=True,
    ),
    Row("ready on a gather", GATHER, (), CallReady(), [ask("1", "ask")], State.GATHERING),
    Row(
        "ready on a transfer",
        TRANSFER,
        (),
        CallReady(),
        [ringing("1"), Bridge("1", EXTENSION)],
        State.BRIDGING,
    ),
    Row(
        "ready on no steps hangs up, nothing to record",
        EMPTY,
        (),
        CallReady(),
        FLOW_DONE,
        State.ENDED,
        record=True,
    ),
    Row(
        "not answered",
        PLAY_PLAY,
        (),
        CallFailed(BUSY),
        [
            not_answered("1", StepName.PLAY, DialResult.BUSY),
            finished(FinishReason.NOT_ANSWERED, BUSY),
        ],
        State.ENDED,
    ),
    # ANSWERED
    Row(
        "parked after answer",
        PLAY_PLAY,
        (CallAnswered(),),
        CallReady(),
        [say("1", "hello")],
        State.PLAYING,
    ),
    Row(
        "parked after answer, gather",
        GATHER,
        (CallAnswered(),),
        CallReady(),
        [ask("1", "ask")],
        State.GATHERING,
    ),
    Row(
        "parked after answer, transfer",
        TRANSFER,
        (CallAnswered(),),
        CallReady(),
        [ringing("1"), Bridge("1", EXTENSION)],
        State.BRIDGING,
    ),
    Row(
        "parked after answer, no steps",
        EMPTY,
        (CallAnswered(),),
        CallReady(),
        FLOW_DONE,
        State.ENDED,
    ),
    Row(
        "hangup before the flow starts: no step ran",
        PLAY_PLAY,
        (CallAnswered(),),
        CalleeHungUp(CLEARING),
        [finished(FinishReason.CALLEE_HANGUP, CLEARING)],
        State.ENDED,
    ),
    # PLAYING
    Row(
        "play then play",
        PLAY_PLAY,
        READY,
        PromptFinished(ok=True),
        [played("1"), say("2", "bye")],
        State.PLAYING,
        step_id="2",
    ),
    Row(
        "play then gather",
        PLAY_GATHER,
        READY,
        PromptFinished(ok=True),
        [played("1"), ask("2", "ask", max_attempts=3)],
        State.GATHERING,
    ),
    Row(
        "play then transfer",
        PLAY_TRANSFER,
        READY,
        PromptFinished(ok=True),
        [played("1"), ringing("2"), Bridge("2", EXTENSION)],
        State.BRIDGING,
    ),
    Row(
        "last play ends the call normally",
        PLAY_PLAY,
        AFTER_HELLO,
        PromptFinished(ok=True),
        [played("2", ended=True), *FLOW_DONE],
        State.ENDED,
    ),
    Row(
        "playback error ends the call failed",
        PLAY_PLAY,
        READY,
        PromptFinished(ok=False),
        [
            played("1", StepStatus.ERROR_PLAYBACK, ended=True),
            Hangup(),
            finished(FinishReason.PLAYBACK_ERROR),
        ],
        State.ENDED,
    ),
    Row(
        "hangup during a play",
        PLAY_PLAY,
        READY,
        CalleeHungUp(CLEARING),
        [
            played("1", StepStatus.ERROR_HANGUP, ended=True),
            finished(FinishReason.CALLEE_HANGUP, CLEARING),
        ],
        State.ENDED,
    ),
    # GATHERING
    Row(
        "branch digits run its play",
        GATHER,
        IN_GATHER,
        DigitsCollected("1"),
        [gathered("1", OK, "1", 1), say("1.b1.1", "one")],
        State.PLAYING,
        step_id="1.b1.1",
    ),
    Row(
        "branch digits run a nested gather",
        GATHER,
        IN_GATHER,
        DigitsCollected("2"),
        [gathered("1", OK, "2", 1), ask("1.b2.1", "again", max_attempts=3)],
        State.GATHERING,
        step_id="1.b2.1",
    ),
    Row(
        "branch digits run a transfer",
        GATHER,
        IN_GATHER,
        DigitsCollected("0"),
        [gathered("1", OK, "0", 1), ringing("1.b3.1"), Bridge("1.b3.1", EXTENSION)],
        State.BRIDGING,
    ),
    Row(
        "a branch without steps ends the call normally",
        GATHER,
        IN_GATHER,
        DigitsCollected("9"),
        [gathered("1", OK, "9", 1, ended=True), *FLOW_DONE],
        State.ENDED,
    ),
    Row(
        "no input is a failed try: ask again",
        GATHER,
        IN_GATHER,
        DigitsCollected(""),
        [ask("1", "ask", attempt=2)],
        State.GATHERING,
    ),
    Row(
        "input matching no branch is a failed try without a default",
        GATHER,
        IN_GATHER,
        DigitsCollected("5"),
        [ask("1", "ask", attempt=2)],
        State.GATHERING,
    ),
    Row(
        "a right answer on the last try",
        GATHER,
        (CallReady(), DigitsCollected("5")),
        DigitsCollected("1"),
        [gathered("1", OK, "1", 2), say("1.b1.1", "one")],
        State.PLAYING,
    ),
    Row(
        "last try without input ends the call: error_no_input",
        GATHER,
        (CallReady(), DigitsCollected("5")),
        DigitsCollected(""),
        [
            gathered("1", NO_INPUT, "", 2, ended=True),
            Hangup(),
            finished(FinishReason.NO_INPUT),
        ],
        State.ENDED,
    ),
    Row(
        "last try invalid ends the call: error_invalid_input, last input kept",
        GATHER,
        (CallReady(), DigitsCollected("")),
        DigitsCollected("7"),
        [
            gathered("1", StepStatus.ERROR_INVALID_INPUT, "7", 2, ended=True),
            Hangup(),
            finished(FinishReason.INVALID_INPUT),
        ],
        State.ENDED,
    ),
    Row(
        "input matching no branch runs the default at once",
        GATHER_DEFAULT,
        IN_GATHER,
        DigitsCollected("7"),
        [gathered("1", OK, "7", 1), say("1.b2.1", "other")],
        State.PLAYING,
    ),
    Row(
        "exact digits win over the default",
        GATHER_DEFAULT,
        IN_GATHER,
        DigitsCollected("1"),
        [gathered("1", OK, "1", 1), say("1.b1.1", "one")],
        State.PLAYING,
    ),
    Row(
        "no input with a default still asks again",
        GATHER_DEFAULT,
        IN_GATHER,
        DigitsCollected(""),
        [ask("1", "ask", attempt=2)],
        State.GATHERING,
    ),
    Row(
        "tries run out with a default: the default, status error_no_input, call goes on",
        GATHER_DEFAULT,
        (CallReady(), DigitsCollected("")),
        DigitsCollected(""),
        [gathered("1", NO_INPUT, "", 2), say("1.b2.1", "other")],
        State.PLAYING,
    ),
    Row(
        "multi-key branches: longest digits, no terminator when a branch uses #",
        MULTI_KEY,
        (),
        CallReady(),
        [ask("1", "ask", max_attempts=3, max_digits=2, terminators="")],
        State.GATHERING,
    ),
    Row(
        "multi-key branch matched",
        MULTI_KEY,
        READY,
        DigitsCollected("12"),
        [gathered("1", OK, "12", 1), say("1.b1.1", "twelve")],
        State.PLAYING,
    ),
    Row(
        "hangup during a gather keeps the last input",
        GATHER,
        (CallReady(), DigitsCollected("5")),
        CalleeHungUp(CLEARING),
        [
            gathered("1", StepStatus.ERROR_HANGUP, "5", 2, ended=True),
            finished(FinishReason.CALLEE_HANGUP, CLEARING),
        ],
        State.ENDED,
    ),
    # BRIDGING
    Row(
        "the person answered",
        TRANSFER,
        READY,
        Bridged(),
        [ringing("1", TransferStatus.ANSWERED)],
        State.BRIDGED,
    ),
    Row(
        "bridge ended answered without a Bridged event",
        TRANSFER,
        READY,
        BridgeFinished(TransferStatus.ANSWERED),
        [
            transferred("1", OK, TransferStatus.ANSWERED),
            Hangup(),
            finished(FinishReason.TRANSFER_DONE),
        ],
        State.ENDED,
    ),
    *(
        Row(
            f"transfer {outcome.value}",
            TRANSFER,
            READY,
            BridgeFinished(outcome),
            [
                transferred("1", StepStatus.ERROR_TRANSFER_FAILED, outcome),
                Hangup(),
                finished(FinishReason.TRANSFER_FAILED),
            ],
            State.ENDED,
        )
        for outcome in (TransferStatus.BUSY, TransferStatus.NO_ANSWER, TransferStatus.FAILED)
    ),
    Row(
        "hangup while the transfer rings",
        TRANSFER,
        READY,
        CalleeHungUp(CLEARING),
        [
            transferred("1", StepStatus.ERROR_HANGUP, None),
            finished(FinishReason.CALLEE_HANGUP, CLEARING),
        ],
        State.ENDED,
    ),
    # BRIDGED
    Row(
        "the person hung up: robocall hangs the parked leg up",
        TRANSFER,
        (CallReady(), Bridged()),
        BridgeFinished(TransferStatus.ANSWERED),
        [
            transferred("1", OK, TransferStatus.ANSWERED),
            Hangup(),
            finished(FinishReason.TRANSFER_DONE),
        ],
        State.ENDED,
    ),
    Row(
        "the callee hung up on the person: a successful transfer",
        TRANSFER,
        (CallReady(), Bridged()),
        CalleeHungUp(CLEARING),
        [
            transferred("1", OK, TransferStatus.ANSWERED),
            finished(FinishReason.CALLEE_HANGUP, CLEARING),
        ],
        State.ENDED,
    ),
    # ENDED
    Row(
        "a hangup after robocall's own hangup",
        PLAY_PLAY,
        (CallReady(), PromptFinished(ok=True), PromptFinished(ok=True)),
        CalleeHungUp(CLEARING),
        [],
        State.ENDED,
    ),
    Row(
        "a second hangup event",
        PLAY_PLAY,
        (CallReady(), CalleeHungUp(CLEARING)),
        CalleeHungUp(CLEARING),
        [],
        State.ENDED,
    ),
    Row(
        "the playback cut by the hangup completes late",
        PLAY_PLAY,
        (CallReady(), CalleeHungUp(CLEARING)),
        PromptFinished(ok=False),
        [],
        State.ENDED,
    ),
    Row(
        "the try cut by the hangup completes late",
        GATHER,
        (CallReady(), CalleeHungUp(CLEARING)),
        DigitsCollected(""),
        [],
        State.ENDED,
    ),
    Row(
        "the bridge cut by the hangup completes late",
        TRANSFER,
        (CallReady(), Bridged(), CalleeHungUp(CLEARING)),
        BridgeFinished(TransferStatus.ANSWERED),
        [],
        State.ENDED,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_transition(row: Row) -> None:
    # given a machine brought to a state by events
    machine = machine_after(row.flow, row.given, record=row.record)

    # when the event arrives
    actions = machine.feed(row.when)

    # then exactly these actions, in this order, and this state
    assert actions == row.actions
    assert machine.state is row.state
    if row.step_id is not None:
        assert machine.step_id == row.step_id


def test_the_rows_cover_every_transition_and_every_state_it_may_lead_to() -> None:
    covered: set[tuple[State, type[Event], State]] = set()
    for row in ROWS:
        machine = machine_after(row.flow, row.given, record=row.record)
        before = machine.state
        machine.feed(row.when)
        covered.add((before, type(row.when), machine.state))

    table = {
        (state, event_type, target)
        for (state, event_type), transition in TRANSITIONS.items()
        for target in transition.targets
    }
    assert table - covered == set()
    assert covered - table == set()

"""The flow machine, table-driven: given a state (reached by events), when an event, then actions
and a state. A meta-test holds the table to TRANSITIONS: every (state, event type) row and every
state it may lead to is exercised here; every pair not in TRANSITIONS raises FlowError."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from robocall.errors import FlowError
from robocall.flow.actions import (
    Action,
    Bridge,
    CallFinished,
    CallOutcome,
    CallState,
    CollectDigits,
    FinishReason,
    Hangup,
    PlayPrompt,
    StartRecording,
    StepName,
    StepResult,
    StepStatus,
)
from robocall.flow.compile import compile_flow
from robocall.flow.events import (
    EVENT_TYPES,
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
from robocall.flow.machine import TRANSITIONS, Machine, State
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


def finished(reason: FinishReason, cause: str = "") -> CallFinished:
    outcome = (
        CallOutcome.FAILED
        if reason in (FinishReason.NOT_ANSWERED, FinishReason.PLAYBACK_ERROR)
        else CallOutcome.COMPLETED
    )
    return CallFinished(outcome, reason, cause)


FLOW_DONE: list[Action] = [Hangup(), finished(FinishReason.FLOW_DONE)]
OK = StepStatus.SUCCESS_OK
NO_INPUT = StepStatus.ERROR_NO_INPUT


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
AFTER_HELLO = (CallReady(), PromptFinished(ok=True))

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
        [Bridge("1", EXTENSION)],
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
        [finished(FinishReason.NOT_ANSWERED, BUSY)],
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
        [Bridge("1", EXTENSION)],
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
        [played("1"), Bridge("2", EXTENSION)],
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
        [gathered("1", OK, "0", 1), Bridge("1.b3.1", EXTENSION)],
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
    Row("the person answered", TRANSFER, READY, Bridged(), [], State.BRIDGED),
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


def machine_after(the_flow: CallFlow, given: tuple[Event, ...], *, record: bool = False) -> Machine:
    machine = Machine(compile_flow(the_flow), record=record)
    for event in given:
        machine.feed(event)
    return machine


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


# --- illegal events ------------------------------------------------------------------------------

# One way to reach each state, on one flow: play, then a gather whose "0" transfers.
REACH_FLOW = flow(play("hello"), gather("ask", branch("0", flow(to_extension("1000")))))
REACH: dict[State, tuple[Event, ...]] = {
    State.IDLE: (),
    State.ANSWERED: (CallAnswered(),),
    State.PLAYING: (CallReady(),),
    State.GATHERING: (CallReady(), PromptFinished(ok=True)),
    State.BRIDGING: (CallReady(), PromptFinished(ok=True), DigitsCollected("0")),
    State.BRIDGED: (CallReady(), PromptFinished(ok=True), DigitsCollected("0"), Bridged()),
    State.ENDED: (CallFailed(BUSY),),
}
SAMPLE: dict[type[Event], Event] = {
    CallAnswered: CallAnswered(),
    CallReady: CallReady(),
    CallFailed: CallFailed(BUSY),
    PromptFinished: PromptFinished(ok=True),
    DigitsCollected: DigitsCollected("0"),
    Bridged: Bridged(),
    BridgeFinished: BridgeFinished(TransferStatus.ANSWERED),
    CalleeHungUp: CalleeHungUp(CLEARING),
}
ILLEGAL = [
    (state, event_type)
    for state in State
    for event_type in EVENT_TYPES
    if (state, event_type) not in TRANSITIONS
]


def snapshot(machine: Machine) -> tuple[object, ...]:
    return (machine.state, machine.step_id, machine.attempt, machine.legal_events())


def test_every_state_is_reached_as_named() -> None:
    for state, given in REACH.items():
        assert machine_after(REACH_FLOW, given).state is state


@pytest.mark.parametrize(
    ("state", "event_type"), ILLEGAL, ids=[f"{s.name}-{e.__name__}" for s, e in ILLEGAL]
)
def test_an_event_outside_the_table_raises_and_changes_nothing(
    state: State, event_type: type[Event]
) -> None:
    # given a machine in ``state``
    machine = machine_after(REACH_FLOW, REACH[state])
    before = snapshot(machine)

    # when an event the table has no row for arrives, then FlowError names it and the state
    with pytest.raises(FlowError, match=f"{event_type.__name__} is illegal in state {state.name}"):
        machine.feed(SAMPLE[event_type])
    assert snapshot(machine) == before
    assert event_type not in machine.legal_events()


@pytest.mark.parametrize(
    ("given", "when"),
    [
        # the bridge was up, so it cannot end busy
        (REACH[State.BRIDGED], BridgeFinished(TransferStatus.BUSY)),
        # robocall ended the call itself: no action was cut short, nothing completes late
        ((CallReady(), PromptFinished(ok=False)), PromptFinished(ok=True)),
        ((CallFailed(BUSY),), PromptFinished(ok=True)),
        ((CallFailed(BUSY),), DigitsCollected("")),
        ((CallFailed(BUSY),), BridgeFinished(TransferStatus.ANSWERED)),
        # a hangup cut a playback: a digits completion is not what is owed
        ((CallReady(), CalleeHungUp(CLEARING)), DigitsCollected("")),
        # the owed completion arrives only once
        ((CallReady(), CalleeHungUp(CLEARING), PromptFinished(ok=False)), PromptFinished(False)),
    ],
)
def test_rows_whose_payload_makes_the_event_illegal(given: tuple[Event, ...], when: Event) -> None:
    machine = machine_after(REACH_FLOW, given)
    before = snapshot(machine)

    with pytest.raises(FlowError):
        machine.feed(when)
    assert snapshot(machine) == before


def test_the_machine_goes_on_after_refusing_an_event() -> None:
    # given a machine gathering that refused a stray event
    machine = machine_after(REACH_FLOW, REACH[State.GATHERING])
    with pytest.raises(FlowError):
        machine.feed(PromptFinished(ok=True))

    # when the awaited event arrives, then it is handled as if nothing had happened
    assert machine.feed(DigitsCollected("0"))[-1] == Bridge("2.b1.1", EXTENSION)


def test_flow_error_names_the_step() -> None:
    machine = machine_after(REACH_FLOW, REACH[State.GATHERING])

    with pytest.raises(FlowError, match="at step 2"):
        machine.feed(Bridged())


def test_legal_events_follow_the_table() -> None:
    assert machine_after(REACH_FLOW, ()).legal_events() == {CallAnswered, CallReady, CallFailed}
    assert machine_after(REACH_FLOW, REACH[State.GATHERING]).legal_events() == {
        DigitsCollected,
        CalleeHungUp,
    }
    cut = machine_after(REACH_FLOW, (CallReady(), CalleeHungUp(CLEARING)))
    assert cut.legal_events() == {CalleeHungUp, PromptFinished}
    assert machine_after(REACH_FLOW, REACH[State.ENDED]).legal_events() == {CalleeHungUp}


# --- counters and messages ahead ---------------------------------------------------------------


def test_attempt_counts_tries_of_the_running_gather_only() -> None:
    machine = machine_after(GATHER, ())
    assert machine.attempt == 0

    machine.feed(CallReady())
    assert machine.attempt == 1
    machine.feed(DigitsCollected(""))
    assert machine.attempt == 2
    machine.feed(DigitsCollected("1"))
    assert (machine.state, machine.attempt) == (State.PLAYING, 0)


def test_attempt_is_zero_once_the_gather_ended_the_call() -> None:
    machine = machine_after(GATHER, (CallReady(), DigitsCollected("")))

    machine.feed(DigitsCollected(""))
    assert (machine.state, machine.attempt) == (State.ENDED, 0)


def test_finished_once_call_finished_was_emitted() -> None:
    machine = machine_after(PLAY_PLAY, AFTER_HELLO)
    assert not machine.finished

    machine.feed(PromptFinished(ok=True))
    assert machine.finished


def test_upcoming_messages_follow_the_call() -> None:
    # given a play, then a gather with a one-play branch and a transfer branch
    machine = machine_after(REACH_FLOW, ())

    # before the flow starts, the first message comes first: render it at dispatch
    assert [m.step_id for m in machine.upcoming_messages()] == ["1", "2"]
    machine.feed(CallReady())
    # while the play runs, what may follow
    assert [m.step_id for m in machine.upcoming_messages()] == ["2"]
    machine.feed(PromptFinished(ok=True))
    # while the gather runs, its branches (a transfer has no message)
    assert machine.upcoming_messages() == []
    machine.feed(DigitsCollected("0"))
    assert machine.upcoming_messages() == []


def test_upcoming_messages_after_answer_and_at_the_end() -> None:
    machine = machine_after(PLAY_GATHER, (CallAnswered(),))
    assert [m.message.text for m in machine.upcoming_messages()] == ["hello", "ask", "one"]

    machine.feed(CalleeHungUp(CLEARING))
    assert machine.upcoming_messages() == []

"""The flow machine outside its transitions: every event the table has no row for raises
FlowError and changes nothing; counters; messages to render ahead."""

from __future__ import annotations

import pytest

from robocall.errors import FlowError
from robocall.flow.actions import Bridge
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
from robocall.flow.machine import TRANSITIONS, State
from tests.support.flow_expect import (
    AFTER_HELLO,
    BUSY,
    CLEARING,
    EXTENSION,
    GATHER,
    PLAY_GATHER,
    PLAY_PLAY,
    machine_after,
    snapshot,
)
from tests.support.flows import branch, flow, gather, play, to_extension

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

"""Properties of the flow machine over random flows and random event sequences (hypothesis).

Whatever the switch sends, in whatever order: a refused event changes nothing; once the leg is
gone (a hangup or a failed dial was accepted) the machine has finished with exactly one
``CallFinished``; no step run yields two results; every step that was started gets its one
result; only the last result says the call ended; robocall's own ``Hangup`` is always followed
by ``CallFinished``. And a callee who answers every command always reaches the end.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from robocall.errors import FlowError
from robocall.flow.actions import (
    Action,
    Bridge,
    CallFinished,
    CallState,
    CollectDigits,
    Hangup,
    PlayPrompt,
    StepName,
    StepResult,
    StepStatus,
)
from robocall.flow.compile import GatherNode, compile_flow
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
from robocall.flow.machine import Machine
from robocall.flow.model import Branch, CallFlow, Gather, Message, Play, Step
from tests.support.flow_expect import snapshot
from tests.support.flows import to_extension

KEYS = ["", "0", "1", "2", "9", "12", "#", "*3", "123"]


@st.composite
def flows(draw: st.DrawFn, depth: int = 3) -> CallFlow:
    """A random callFlow: plays, transfers and gathers nested up to ``depth`` levels."""
    kinds = ["play", "transfer"] + (["gather"] if depth > 0 else [])
    steps: list[Step] = []
    for index in range(draw(st.integers(min_value=0, max_value=3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "play":
            steps.append(Play(Message(f"say {depth}.{index}")))
        elif kind == "transfer":
            steps.append(to_extension("1000"))
        else:
            steps.append(draw(gathers(depth)))
    return CallFlow(tuple(steps))


@st.composite
def gathers(draw: st.DrawFn, depth: int) -> Gather:
    digits = draw(st.lists(st.sampled_from(KEYS[1:]), unique=True, max_size=3))
    branches = [Branch(d, False, draw(flows(depth - 1))) for d in digits]
    if draw(st.booleans()):
        default_at = draw(st.integers(min_value=0, max_value=len(branches)))
        if default_at < len(branches) and draw(st.booleans()):
            # a branch with digits that is also the default, as "0" in the seed
            old = branches[default_at]
            branches[default_at] = Branch(old.digits, True, old.flow)
        else:
            branches.insert(default_at, Branch(None, True, draw(flows(depth - 1))))
    retries = draw(st.integers(min_value=1, max_value=3))
    return Gather(Message(f"ask {depth}"), tuple(branches), max_retries=retries)


def events_of(event_type: type[Event]) -> st.SearchStrategy[Event]:
    """Random events of one type, with random payloads."""
    causes = st.sampled_from(["NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER"])
    strategies: dict[type[Event], st.SearchStrategy[Event]] = {
        CallAnswered: st.just(CallAnswered()),
        CallReady: st.just(CallReady()),
        CallFailed: st.builds(CallFailed, causes),
        PromptFinished: st.builds(PromptFinished, st.booleans()),
        DigitsCollected: st.builds(DigitsCollected, st.sampled_from(KEYS)),
        Bridged: st.just(Bridged()),
        BridgeFinished: st.builds(BridgeFinished, st.sampled_from(list(TransferStatus))),
        CalleeHungUp: st.builds(CalleeHungUp, causes),
    }
    return strategies[event_type]


@settings(max_examples=300, deadline=None)
@given(the_flow=flows(), record=st.booleans(), data=st.data())
def test_random_event_sequences_keep_the_invariants(
    the_flow: CallFlow, record: bool, data: st.DataObject
) -> None:
    machine = Machine(compile_flow(the_flow), record=record)
    emitted: list[Action] = []
    leg_gone = False
    for _ in range(data.draw(st.integers(min_value=1, max_value=30))):
        # mostly events the machine expects now, sometimes any event at all
        legal = sorted(machine.legal_events(), key=lambda t: t.__name__)
        expected_now = bool(legal) and data.draw(st.integers(0, 3)) > 0
        pool = legal if expected_now else list(EVENT_TYPES)
        event = data.draw(st.sampled_from(pool).flatmap(events_of))
        before = snapshot(machine)
        was_finished = machine.finished
        try:
            batch = machine.feed(event)
        except FlowError:
            assert snapshot(machine) == before
            continue
        emitted.extend(batch)
        if was_finished:
            assert batch == []  # nothing after CallFinished
        if isinstance(event, CalleeHungUp | CallFailed):
            leg_gone = True
        if leg_gone:
            assert machine.finished
        for index, action in enumerate(batch):
            if isinstance(action, Hangup):
                assert isinstance(batch[index + 1], CallFinished)
                assert index + 2 == len(batch)

    finishes = [a for a in emitted if isinstance(a, CallFinished)]
    assert len(finishes) == (1 if machine.finished else 0)
    if finishes:
        assert emitted[-1] == finishes[0]

    reported = [a for a in emitted if isinstance(a, StepResult)]
    # a running transfer's progress is ongoing, and its final result follows it
    for index, progress in enumerate(reported):
        if not progress.final:
            assert progress.step_name is StepName.TRANSFER
            assert progress.call_state is CallState.ONGOING
            assert any(r.step_id == progress.step_id and r.final for r in reported[index:]) or (
                not machine.finished
            )
    # a call never answered reports one result, for a step that never started
    unanswered = [r for r in reported if r.status is StepStatus.ERROR_NOT_ANSWERED]
    assert unanswered == reported or not unanswered
    results = [r for r in reported if r.final and r.status is not StepStatus.ERROR_NOT_ANSWERED]
    result_ids = [r.step_id for r in results]
    assert len(result_ids) == len(set(result_ids)), "two results for one step run"

    started = list(
        dict.fromkeys(
            a.step_id for a in emitted if isinstance(a, PlayPrompt | CollectDigits | Bridge)
        )
    )
    if machine.finished:
        assert result_ids == started  # every started step got its one result, in order
    else:
        assert result_ids == started[:-1]  # all but the one running now
    assert all(r.call_state is CallState.ONGOING for r in results[:-1])
    if results:
        ended = results[-1].call_state is CallState.ENDED
        assert ended == machine.finished


def answer(action: Action, data: st.DataObject) -> Event | None:
    """A callee that completes every command, with a random outcome."""
    if isinstance(action, PlayPrompt):
        return PromptFinished(ok=data.draw(st.booleans()))
    if isinstance(action, CollectDigits):
        return DigitsCollected(data.draw(st.sampled_from(KEYS)))
    if isinstance(action, Bridge):
        return BridgeFinished(data.draw(st.sampled_from(list(TransferStatus))))
    return None


@settings(max_examples=300, deadline=None)
@given(the_flow=flows(), data=st.data())
def test_a_callee_who_answers_every_command_reaches_the_end(
    the_flow: CallFlow, data: st.DataObject
) -> None:
    program = compile_flow(the_flow)
    machine = Machine(program, record=False)
    # every step runs at most once and a gather at most max_attempts times: a bound on feeds
    bound = 2 + sum(
        node.max_attempts if isinstance(node, GatherNode) else 1 for node in program.nodes.values()
    )
    pending = machine.feed(CallReady())
    for _ in range(bound):
        if machine.finished:
            break
        commands = [event for a in pending if (event := answer(a, data)) is not None]
        assert len(commands) == 1, f"one command out at a time, got {pending}"
        pending = machine.feed(commands[0])

    assert machine.finished
    assert isinstance(pending[-1], CallFinished)

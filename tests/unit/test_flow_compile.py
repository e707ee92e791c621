"""compile_flow: step ids, where each step leads, gather parameters, messages to render ahead."""

from __future__ import annotations

import dataclasses

import pytest

from robocall.flow.compile import (
    DEFAULT_DIGIT_TIMEOUT_MS,
    DEFAULT_INPUT_TIMEOUT_MS,
    GatherNode,
    PlayNode,
    StepMessage,
    TransferNode,
    compile_flow,
)
from tests.support.flows import (
    SEED_ASK,
    SEED_FIRST,
    SEED_FLOW,
    SEED_LAST,
    SEED_NESTED_ASK,
    branch,
    flow,
    gather,
    play,
    to_extension,
)


def test_seed_steps_get_path_ids_in_depth_first_order() -> None:
    # given the seed's callFlow / when compiled
    program = compile_flow(SEED_FLOW)

    # then every step of every nested flow has a path id, listed depth first
    assert list(program.nodes) == ["1", "2", "2.b1.1", "2.b1.1.b1.1", "2.b2.1"]
    assert program.entry == "1"
    assert program.unreachable == ()


def test_seed_steps_lead_where_the_contract_says() -> None:
    program = compile_flow(SEED_FLOW)

    assert program.node("1") == PlayNode("1", SEED_FIRST, next_id="2")
    top_gather = program.node("2")
    assert isinstance(top_gather, GatherNode)
    assert dict(top_gather.routes) == {"1": "2.b1.1", "0": "2.b2.1"}
    assert (top_gather.has_default, top_gather.default_target) == (True, "2.b2.1")
    nested = program.node("2.b1.1")
    assert isinstance(nested, GatherNode)
    assert dict(nested.routes) == {}
    assert (nested.has_default, nested.default_target) == (True, "2.b1.1.b1.1")
    # the last play of a branch ends the call: the branch replaced the rest of the parent flow
    assert program.node("2.b1.1.b1.1") == PlayNode("2.b1.1.b1.1", SEED_LAST, next_id=None)
    transfer = program.node("2.b2.1")
    assert isinstance(transfer, TransferNode)
    assert transfer.transfer.target == "1000"


def test_gather_defaults_one_key_terminated_by_hash_with_default_timeouts() -> None:
    node = compile_flow(SEED_FLOW).node("2")

    assert isinstance(node, GatherNode)
    assert (node.min_digits, node.max_digits, node.terminators) == (1, 1, "#")
    assert (node.timeout_ms, node.digit_timeout_ms) == (
        DEFAULT_INPUT_TIMEOUT_MS,
        DEFAULT_DIGIT_TIMEOUT_MS,
    )
    assert node.max_attempts == 3


@pytest.mark.parametrize(
    ("digits", "max_digits", "terminators"),
    [
        (("1", "2"), 1, "#"),
        (("1", "123", "45"), 3, "#"),
        (("1", "#"), 1, ""),
        (("12#", "3"), 3, ""),
        (("*9", "0"), 2, "#"),
    ],
)
def test_multi_key_branches_set_max_digits_and_terminators(
    digits: tuple[str, ...], max_digits: int, terminators: str
) -> None:
    # given a gather whose branches use these digits
    the_flow = flow(gather("ask", *(branch(d, flow(play(d))) for d in digits)))

    # when compiled
    node = compile_flow(the_flow).node("1")

    # then it collects up to the longest branch, and '#' ends input only if no branch uses it
    assert isinstance(node, GatherNode)
    assert (node.max_digits, node.terminators) == (max_digits, terminators)


def test_timeouts_are_compile_parameters() -> None:
    node = compile_flow(SEED_FLOW, input_timeout_ms=1200, digit_timeout_ms=400).node("2")

    assert isinstance(node, GatherNode)
    assert (node.timeout_ms, node.digit_timeout_ms) == (1200, 400)


def test_route_prefers_an_exact_branch_over_the_default_and_never_routes_no_input() -> None:
    node = compile_flow(SEED_FLOW).node("2")
    assert isinstance(node, GatherNode)

    assert node.route("1") == (True, "2.b1.1")
    assert node.route("0") == (True, "2.b2.1")  # "0" is both a digit and the default
    assert node.route("9") == (True, "2.b2.1")  # no branch: the default
    assert node.route("") == (False, None)  # no input is a failed try, even with a default


def test_without_a_default_unmatched_input_routes_nowhere() -> None:
    node = compile_flow(flow(gather("ask", branch("1", flow(play("one")))))).node("1")
    assert isinstance(node, GatherNode)

    assert node.route("2") == (False, None)
    assert node.has_default is False


def test_a_branch_without_steps_leads_to_the_end() -> None:
    node = compile_flow(flow(gather("ask", branch("1", flow())))).node("1")

    assert isinstance(node, GatherNode)
    assert node.route("1") == (True, None)


def test_steps_after_a_gather_or_a_transfer_are_unreachable() -> None:
    # given steps placed after a gather (whose branches replace the rest) and after a transfer
    the_flow = flow(
        play("hi"),
        gather("ask", branch("1", flow(to_extension("1000"), play("never after transfer")))),
        play("never after gather"),
    )

    program = compile_flow(the_flow)

    # then they keep ids but are listed unreachable, and no call renders their messages
    assert program.unreachable == ("2.b1.2", "3")
    assert [m.step_id for m in program.messages_in_order()] == ["1", "2"]


def test_an_empty_flow_has_no_entry() -> None:
    program = compile_flow(flow())

    assert program.entry is None
    assert dict(program.nodes) == {}
    assert program.messages_in_order() == ()


def test_a_gather_without_branches_compiles_to_one_that_fails_every_try() -> None:
    node = compile_flow(flow(gather("ask"))).node("1")

    assert isinstance(node, GatherNode)
    assert node.route("1") == (False, None)
    assert node.targets() == ()


def test_max_retries_below_one_still_gives_one_try() -> None:
    node = compile_flow(flow(gather("ask", branch("1", flow()), max_retries=0))).node("1")

    assert isinstance(node, GatherNode)
    assert node.max_attempts == 1


def test_a_digit_given_twice_keeps_the_first_branch() -> None:
    node = compile_flow(
        flow(gather("ask", branch("1", flow(play("a"))), branch("1", flow(play("b")))))
    ).node("1")

    assert isinstance(node, GatherNode)
    assert node.route("1") == (True, "1.b1.1")


def test_seed_messages_in_order() -> None:
    messages = compile_flow(SEED_FLOW).messages_in_order()

    assert messages == (
        StepMessage("1", SEED_FIRST),
        StepMessage("2", SEED_ASK),
        StepMessage("2.b1.1", SEED_NESTED_ASK),
        StepMessage("2.b1.1.b1.1", SEED_LAST),
    )


def test_messages_after_lists_nearest_first() -> None:
    # given branches of different depths
    the_flow = flow(
        gather(
            "ask",
            branch("1", flow(play("one-a"), play("one-b"))),
            branch("2", flow(play("two"))),
        )
    )
    program = compile_flow(the_flow)

    # when asking what may play after the gather
    after = program.messages_after(program.successors("1"))

    # then both branches' first messages come before the second message of branch 1
    assert [m.message.text for m in after] == ["one-a", "two", "one-b"]


def test_successors_of_each_kind() -> None:
    program = compile_flow(SEED_FLOW)

    assert program.successors("1") == ("2",)
    assert program.successors("2") == ("2.b1.1", "2.b2.1")
    assert program.successors("2.b1.1.b1.1") == (None,)
    assert program.successors("2.b2.1") == ()


def test_a_program_cannot_be_changed() -> None:
    program = compile_flow(SEED_FLOW)

    with pytest.raises(TypeError):
        program.nodes["9"] = program.node("1")  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.entry = "2"  # type: ignore[misc]

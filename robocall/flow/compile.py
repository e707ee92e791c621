"""Compile a callFlow into a :class:`Program`: numbered steps and where each one leads.

A program is compiled once per request and shared, read-only, by every call of that request;
each call runs it with its own :class:`robocall.flow.machine.Machine`.

Step ids are paths, stable for a given flow: top-level steps are ``"1"``, ``"2"``, ...; the
steps of a gather's branch ``k`` (1-based, in submission order) are ``"<gather id>.b<k>.1"``,
``"<gather id>.b<k>.2"``, ... So the seed example compiles to::

    1            play      "thanks {{name}}"          -> 2
    2            gather    "Dear Mr {{name}}, ..."    "1" -> 2.b1.1; "0" and default -> 2.b2.1
    2.b1.1       gather    "message need to play"     default -> 2.b1.1.b1.1
    2.b1.1.b1.1  play      "msg need to play"         -> end
    2.b2.1       transfer  Ext:1000

Where a step leads (docs/design.md, "Contract decisions"): a play goes to the next step of its flow,
or to the end (``None``: hang up normally) when its flow has no more steps. A gather never
continues its own flow: a branch's callFlow replaces the rest of the parent flow, and a gather
whose tries run out without a default branch ends the call. A transfer ends the call when its
bridge ends. Steps after a gather or a transfer in the same flow therefore never run; they keep
their ids and are listed in :attr:`Program.unreachable`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from robocall.flow.model import CallFlow, Gather, Message, Play, Step, Transfer

# How long a gather waits for the first key after its prompt, and between keys. Not in the
# B3 contract; FreeSWITCH's own examples use the same orders of magnitude.
DEFAULT_INPUT_TIMEOUT_MS = 5000
DEFAULT_DIGIT_TIMEOUT_MS = 3000

# ``None`` as a target: the flow has run out of steps.
Target = str | None


@dataclass(frozen=True)
class PlayNode:
    """A compiled play step; ``next_id`` is the step after it, ``None`` at the end."""

    step_id: str
    message: Message
    next_id: Target


@dataclass(frozen=True)
class GatherNode:
    """A compiled gather step.

    ``routes`` maps each branch's digits to the first step of its flow; ``default_target`` is
    that of the default branch when ``has_default``. ``max_digits`` is the longest branch
    digits (1 when no branch has digits); ``terminators`` is ``"#"`` unless a branch's digits
    use ``#``, in which case no key ends the input early.
    """

    step_id: str
    message: Message
    max_attempts: int
    routes: Mapping[str, Target]
    has_default: bool
    default_target: Target
    min_digits: int
    max_digits: int
    terminators: str
    timeout_ms: int
    digit_timeout_ms: int

    def route(self, digits: str) -> tuple[bool, Target]:
        """Where ``digits`` lead: ``(True, target)`` for a branch, ``(False, None)`` for none.

        An exact branch match wins over the default; any other non-empty input takes the
        default branch if there is one. Empty input never matches: it is a failed try.
        """
        if not digits:
            return False, None
        if digits in self.routes:
            return True, self.routes[digits]
        if self.has_default:
            return True, self.default_target
        return False, None

    def targets(self) -> tuple[Target, ...]:
        """Every place this gather can lead, in branch order, without repeats."""
        seen: list[Target] = list(dict.fromkeys(self.routes.values()))
        if self.has_default and self.default_target not in seen:
            seen.append(self.default_target)
        return tuple(seen)


@dataclass(frozen=True)
class TransferNode:
    """A compiled transfer step: the call ends when its bridge ends."""

    step_id: str
    transfer: Transfer


Node = PlayNode | GatherNode | TransferNode


@dataclass(frozen=True)
class StepMessage:
    """A message and the step that plays it (what the runner renders to audio ahead)."""

    step_id: str
    message: Message


@dataclass(frozen=True)
class Program:
    """A compiled callFlow: immutable, shared by all calls of one request.

    ``entry`` is the first step's id (``None`` for a flow without steps: the call is hung up
    at once). ``nodes`` holds every step by id, in depth-first submission order.
    """

    entry: Target
    nodes: Mapping[str, Node]
    unreachable: tuple[str, ...]

    def node(self, step_id: str) -> Node:
        """The compiled step ``step_id``."""
        return self.nodes[step_id]

    def successors(self, step_id: str) -> tuple[Target, ...]:
        """Where step ``step_id`` can lead (``None``: the end of the flow)."""
        return _targets_of(self.nodes[step_id])

    def messages_in_order(self) -> tuple[StepMessage, ...]:
        """Every message a call of this program may play, in depth-first step order.

        The first entry is the first message every call plays when the flow begins with a play
        or a gather (render it at dispatch). Unreachable steps are left out: no call plays them.
        """
        dead = set(self.unreachable)
        return tuple(
            StepMessage(node.step_id, node.message)
            for node in self.nodes.values()
            if not isinstance(node, TransferNode) and node.step_id not in dead
        )

    def messages_after(self, targets: tuple[Target, ...]) -> list[StepMessage]:
        """Messages of the steps reachable from ``targets`` (included), nearest first.

        Breadth-first, so what may play next comes before what may play later: the order in
        which a runner should render ahead.
        """
        found: list[StepMessage] = []
        seen: set[str] = set()
        queue: deque[Target] = deque(targets)
        while queue:
            step_id = queue.popleft()
            if step_id is None or step_id in seen:
                continue
            seen.add(step_id)
            node = self.nodes[step_id]
            if not isinstance(node, TransferNode):
                found.append(StepMessage(step_id, node.message))
            queue.extend(self.successors(step_id))
        return found


def compile_flow(
    flow: CallFlow,
    *,
    input_timeout_ms: int = DEFAULT_INPUT_TIMEOUT_MS,
    digit_timeout_ms: int = DEFAULT_DIGIT_TIMEOUT_MS,
) -> Program:
    """Compile a validated ``flow`` into a :class:`Program`.

    Total for any model value (validation belongs to ``robocall.flow.parse``): an empty flow
    ends at once, a gather without branches fails every try.
    """
    nodes: dict[str, Node] = {}
    _compile_steps(flow, "", nodes, input_timeout_ms, digit_timeout_ms)
    entry = _step_id("", 1) if flow.steps else None
    reachable = _reachable(entry, nodes)
    unreachable = tuple(step_id for step_id in nodes if step_id not in reachable)
    return Program(entry=entry, nodes=MappingProxyType(nodes), unreachable=unreachable)


def _step_id(prefix: str, index: int) -> str:
    return f"{prefix}{index}"


def _compile_steps(
    flow: CallFlow,
    prefix: str,
    nodes: dict[str, Node],
    input_timeout_ms: int,
    digit_timeout_ms: int,
) -> None:
    count = len(flow.steps)
    for index, step in enumerate(flow.steps, start=1):
        step_id = _step_id(prefix, index)
        next_id = _step_id(prefix, index + 1) if index < count else None
        nodes[step_id] = _compile_step(step, step_id, next_id, input_timeout_ms, digit_timeout_ms)
        if isinstance(step, Gather):
            for branch_number, branch in enumerate(step.branches, start=1):
                prefix_in_branch = f"{step_id}.b{branch_number}."
                _compile_steps(
                    branch.flow, prefix_in_branch, nodes, input_timeout_ms, digit_timeout_ms
                )


def _compile_step(
    step: Step, step_id: str, next_id: Target, input_timeout_ms: int, digit_timeout_ms: int
) -> Node:
    if isinstance(step, Play):
        return PlayNode(step_id=step_id, message=step.message, next_id=next_id)
    if isinstance(step, Transfer):
        return TransferNode(step_id=step_id, transfer=step)
    return _compile_gather(step, step_id, input_timeout_ms, digit_timeout_ms)


def _compile_gather(
    gather: Gather, step_id: str, input_timeout_ms: int, digit_timeout_ms: int
) -> GatherNode:
    routes: dict[str, Target] = {}
    default_target: Target = None
    for branch_number, branch in enumerate(gather.branches, start=1):
        first = _step_id(f"{step_id}.b{branch_number}.", 1) if branch.flow.steps else None
        # parse rejects a digit twice; should one slip through, the first branch keeps it.
        if branch.digits is not None and branch.digits not in routes:
            routes[branch.digits] = first
        if branch is gather.default_branch:
            default_target = first
    branch_digits = list(routes)
    return GatherNode(
        step_id=step_id,
        message=gather.message,
        max_attempts=max(1, gather.max_retries),
        routes=MappingProxyType(routes),
        has_default=gather.default_branch is not None,
        default_target=default_target,
        min_digits=1,
        max_digits=max((len(digits) for digits in branch_digits), default=1),
        terminators="" if any("#" in digits for digits in branch_digits) else "#",
        timeout_ms=input_timeout_ms,
        digit_timeout_ms=digit_timeout_ms,
    )


def _reachable(entry: Target, nodes: Mapping[str, Node]) -> set[str]:
    seen: set[str] = set()
    stack: list[Target] = [entry]
    while stack:
        step_id = stack.pop()
        if step_id is None or step_id in seen:
            continue
        seen.add(step_id)
        stack.extend(_targets_of(nodes[step_id]))
    return seen


def _targets_of(node: Node) -> tuple[Target, ...]:
    if isinstance(node, PlayNode):
        return (node.next_id,)
    if isinstance(node, GatherNode):
        return node.targets()
    return ()

"""Call flows built as model values for the flow tests (parse.py is another branch's work)."""

from __future__ import annotations

from robocall.flow.model import (
    Branch,
    CallFlow,
    Gather,
    Gender,
    Message,
    Play,
    Step,
    Transfer,
    TransferKind,
)


def flow(*steps: Step) -> CallFlow:
    """A callFlow of ``steps``."""
    return CallFlow(steps=tuple(steps))


def play(text: str) -> Play:
    """A play step saying ``text``."""
    return Play(Message(text))


def gather(text: str, *branches: Branch, max_retries: int = 3) -> Gather:
    """A gather step asking ``text``."""
    return Gather(Message(text), branches=tuple(branches), max_retries=max_retries)


def branch(digits: str | None, then: CallFlow, *, default: bool = False) -> Branch:
    """A gather branch on ``digits`` (or none), optionally the default one."""
    return Branch(digits=digits, is_default=default, flow=then)


def to_extension(ext: str) -> Transfer:
    """A transfer to PBX extension ``ext``."""
    return Transfer(kind=TransferKind.EXTENSION, target=ext)


# The callFlow of tests/support/seed_example_request.json, field for field.
SEED_FIRST = Message("thanks {{name}}", lang="en", gender=Gender.MALE)
SEED_ASK = Message("Dear Mr {{name}}, the amount of {{amount}} will be due on {{dueDate}}")
SEED_NESTED_ASK = Message("message need to play", lang="en", gender=Gender.FEMALE)
SEED_LAST = Message("msg need to play")
SEED_FLOW = flow(
    Play(SEED_FIRST),
    Gather(
        SEED_ASK,
        branches=(
            branch(
                "1",
                flow(
                    Gather(
                        SEED_NESTED_ASK,
                        branches=(branch(None, flow(Play(SEED_LAST)), default=True),),
                    )
                ),
            ),
            branch("0", flow(to_extension("1000")), default=True),
        ),
    ),
)

"""What happened on a call: the events the call runner feeds to a flow machine.

The runner (``robocall.calls``) turns Event Socket frames into these values; the machine
(``robocall.flow.machine``) never sees ESL. Each event says which frame it stands for, because
the lab showed which frames can be trusted for what (docs/design.md, "Facts measured here").

Lifecycle of one call, as events::

    [CallAnswered] CallReady  (PromptFinished | DigitsCollected | Bridged | BridgeFinished)*
    ... and at any point after the answer: CalleeHungUp (possibly more than once)

    or, when the callee never answered: CallFailed

After a ``CalleeHungUp`` ends the call in the middle of an action, the completion of that
action (FreeSWITCH sends it after the hangup) may still be fed once; the machine ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from robocall.flow.status import DialResult

# How a bridge to a person ended; also the ``transfer_status`` of a transfer step.
TransferStatus = DialResult


@dataclass(frozen=True)
class CallAnswered:
    """The robo leg was answered (CHANNEL_ANSWER). Nothing starts yet.

    The leg is not in ``park()`` until ~20 ms later, and a command landing in that gap is
    aborted, so the flow waits for :class:`CallReady`. Optional, but without it a callee who
    hangs up inside that gap can only be reported as a :class:`CallFailed`.
    """


@dataclass(frozen=True)
class CallReady:
    """The answered leg is parked (CHANNEL_PARK, or its first CHANNEL_EXECUTE of ``park``).

    Starts the flow. Feed it once per call: the leg parks again after a bridge, and that
    second park is not a new start.
    """


@dataclass(frozen=True)
class CallFailed:
    """The call never got answered: busy, no answer, rejected, network error.

    ``cause`` is FreeSWITCH's hangup cause (``USER_BUSY``, ``NO_ANSWER``, ...). A hangup of a
    leg that was never answered is a ``CallFailed``, not a :class:`CalleeHungUp`.
    """

    cause: str


@dataclass(frozen=True)
class PromptFinished:
    """A :class:`~robocall.flow.actions.PlayPrompt` completed (its CHANNEL_EXECUTE_COMPLETE).

    ``ok`` is false when FreeSWITCH answered ``PLAYBACK ERROR``. When the callee hung up, the
    runner feeds :class:`CalleeHungUp` first (FreeSWITCH sends CHANNEL_HANGUP before this
    completion, whose ``Answer-State`` is then ``hangup``).
    """

    ok: bool


@dataclass(frozen=True)
class DigitsCollected:
    """One try of a :class:`~robocall.flow.actions.CollectDigits` completed.

    ``digits`` is ``pagd_digits`` as FreeSWITCH set it, ``""`` when the callee pressed nothing
    in time. Judge by ``pagd_digits``, not ``read_result``: the lab showed ``read_result`` says
    ``success`` for invalid input.
    """

    digits: str


@dataclass(frozen=True)
class Bridged:
    """The transfer's other leg answered and is bridged to the robo leg (CHANNEL_BRIDGE).

    Optional: without it the transfer still succeeds on ``BridgeFinished(ANSWERED)``. With it,
    a callee who hangs up while talking to the person ends a successful transfer, not a
    failed step.
    """


@dataclass(frozen=True)
class BridgeFinished:
    """The ``bridge`` application completed (its CHANNEL_EXECUTE_COMPLETE).

    ``outcome`` comes from ``originate_disposition`` / ``DIALSTATUS``. The runner bridges with
    ``continue_on_fail=true`` so that a busy transfer target does not hang the robo leg up
    before the result is recorded.
    """

    outcome: TransferStatus


@dataclass(frozen=True)
class CalleeHungUp:
    """The answered robo leg hung up (CHANNEL_HANGUP / CHANNEL_HANGUP_COMPLETE).

    ``cause`` is FreeSWITCH's hangup cause. Feeding it again, or after robocall hung up itself,
    is harmless.
    """

    cause: str


Event = (
    CallAnswered
    | CallReady
    | CallFailed
    | PromptFinished
    | DigitsCollected
    | Bridged
    | BridgeFinished
    | CalleeHungUp
)

EVENT_TYPES: tuple[type[Event], ...] = (
    CallAnswered,
    CallReady,
    CallFailed,
    PromptFinished,
    DigitsCollected,
    Bridged,
    BridgeFinished,
    CalleeHungUp,
)

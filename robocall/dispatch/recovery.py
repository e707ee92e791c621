"""Crash recovery at start: calls this node left ``dialing``/``onProgress`` are settled before
anything new is dialled, and none of them is dialled again.

A call is committed ``dialing`` with its channel uuid before its originate leaves, so after a
crash (kill -9, power loss) the store names every call that may be on the switch. Each is
looked up by that uuid (``uuid_exists``, which reads the switch's own channel table rather than
``show channels``' asynchronous copy):

- a live channel is hung up cleanly (``uuid_kill ... NORMAL_CLEARING``), and robocall waits for
  its CHANNEL_HANGUP_COMPLETE. Its flow cannot be resumed: which step it was in, what it played,
  which digits were pressed, all went with the process, and a callee left parked hears only
  silence. Ending it at once, with a cause that says why, is the honest outcome; following it
  to a hangup that may never come would hold a line and a person on a dead call.
- a call with no channel (it ended while robocall was down, or its originate never left) is
  final as it stands.

Both are recorded ``failed`` with hangupCause ``ROBOCALL_RESTARTED`` (``answeredAt`` stays, so a
client sees whether the callee had answered), and the observers (webhooks, metrics, the call
log) are told of each as of any call's end. Only this node's calls are touched: in a shared
database each node recovers what it claimed (``calls.node_id``), and only once it holds the
node's lease — which it gets only when the process before it is gone (``dispatch.lease``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gevent.queue

from robocall.calls.observers import Observers
from robocall.calls.runner import CallLog
from robocall.errors import CommandFailed, SwitchDisconnected
from robocall.esl import commands
from robocall.esl.client import DISCONNECTED, EslClient
from robocall.store.nodes import UnfinishedCall
from robocall.store.records import CallStatus, CallTicket

log = logging.getLogger(__name__)

RESTARTED_CAUSE = "ROBOCALL_RESTARTED"
HANGUP_WAIT_SECONDS = 10.0


class RecoveryStore(CallLog, Protocol):
    """The queries recovery needs (``robocall.store.repo.Repo`` implements them): a call's
    log, to record its end, and this node's unfinished calls."""

    def calls_to_recover(self, node_id: str) -> list[UnfinishedCall]: ...


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery found: calls whose live channel it hung up, and calls with no channel."""

    hung_up: tuple[int, ...] = ()
    without_channel: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return len(self.hung_up) + len(self.without_channel)

    def merged(self, other: RecoveryReport) -> RecoveryReport:
        """Both reports as one (recovery runs once per switch of a pool)."""
        return RecoveryReport(self.hung_up + other.hung_up,
                              self.without_channel + other.without_channel)


def recover_calls(
    store: RecoveryStore,
    switch: EslClient,
    *,
    node_id: str,
    clock: Callable[[], float] = time.time,
    hangup_wait_seconds: float = HANGUP_WAIT_SECONDS,
    observers: Observers | None = None,
    belongs: Callable[[UnfinishedCall], bool] = lambda call: True,
) -> RecoveryReport:
    """Settle this node's unfinished calls on ``switch`` (those ``belongs`` says were placed
    there, in a pool); raises SwitchError if the switch cannot be asked (nothing is recorded
    then, so a retry after the reconnect starts over)."""
    unfinished = [call for call in store.calls_to_recover(node_id) if belongs(call)]
    if not unfinished:
        return RecoveryReport()
    live: list[UnfinishedCall] = []
    absent: list[UnfinishedCall] = []
    for call in unfinished:
        exists = bool(call.channel_uuid) and _channel_exists(switch, str(call.channel_uuid))
        (live if exists else absent).append(call)
    _hang_up(switch, live, hangup_wait_seconds)
    for call in live + absent:
        now = clock()
        duration = None if call.answered_at is None else max(0.0, now - call.answered_at)
        request_completed = store.call_ended(
            call.call_id,
            status=CallStatus.FAILED,
            hangup_cause=RESTARTED_CAUSE,
            ended_at=now,
            duration_seconds=duration,
        )
        if observers is not None:
            ticket = _ticket(call)
            observers.call_ended(ticket, CallStatus.FAILED, RESTARTED_CAUSE, duration)
            if request_completed:
                observers.request_completed(ticket)
    report = RecoveryReport(
        hung_up=tuple(c.call_id for c in live), without_channel=tuple(c.call_id for c in absent)
    )
    log.warning(
        "recovered %d unfinished call(s) of node %s: %d live hung up, %d without a channel; "
        "all recorded failed (%s), none dialled again",
        report.total, node_id, len(live), len(absent), RESTARTED_CAUSE,
    )
    return report


def _ticket(call: UnfinishedCall) -> CallTicket:
    """What an observer is told about a recovered call (its flow and properties went with the
    process that ran it)."""
    return CallTicket(
        call_id=call.call_id,
        request_id=call.request_id,
        organization_id=call.organization_id,
        phone=call.phone,
        caller=call.caller,
        properties={},
        channel_uuid=call.channel_uuid or "",
        line_variable=("", ""),
        record=False,
    )


def _channel_exists(switch: EslClient, channel_uuid: str) -> bool:
    return switch.api(commands.uuid_exists(channel_uuid)).strip() == "true"


def _hang_up(switch: EslClient, calls: list[UnfinishedCall], wait_seconds: float) -> None:
    """Kill each live channel and wait (bounded) for its CHANNEL_HANGUP_COMPLETE."""
    uuids = [str(call.channel_uuid) for call in calls]
    # Registered before the kill: the hangup's events follow the command at once.
    queues = {channel_uuid: switch.channel_queue(channel_uuid) for channel_uuid in uuids}
    try:
        for channel_uuid in uuids:
            with contextlib.suppress(CommandFailed):  # it may have ended on its own just now
                switch.api(commands.uuid_kill(channel_uuid, "NORMAL_CLEARING"))
        deadline = time.monotonic() + wait_seconds
        for channel_uuid, queue in queues.items():
            if not _wait_hangup_complete(queue, deadline):
                log.error("channel %s did not end within %s s of uuid_kill", channel_uuid,
                          wait_seconds)
    finally:
        for channel_uuid in uuids:
            switch.release_channel(channel_uuid)


def _wait_hangup_complete(queue: gevent.queue.Queue, deadline: float) -> bool:
    while True:
        try:
            item = queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except gevent.queue.Empty:
            return False
        if item is DISCONNECTED:
            raise SwitchDisconnected("the switch connection dropped during recovery")
        if getattr(item, "name", "") == "CHANNEL_HANGUP_COMPLETE":
            return True

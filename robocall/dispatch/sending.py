"""The send gate: every new leg waits here for its turn, right before its command leaves.

Calls-per-second is spent when a command is SENT, not when its call is claimed: a claimed call
may wait for its first message, and calls claimed together would otherwise leave bunched (the
lab showed 222 originates in one second at a pace of 100, and the switch's "Throttle Error").
A call's originate waits for its organization's pace, then for the switch's; a transfer's bridge
waits for the switch's only, ahead of every waiting originate (a person is on the line). Turns
are first come, first served, so calls leave in the order they reach the gate.

The gate also bounds claiming: the dispatcher claims no more calls than can be sent within a
tenth of a second (:meth:`SendGate.room`), so a claimed call never waits long for its turn and
a crash finds few calls claimed and not yet sent (recovery cannot tell those from calls that
were sent and ended, so it records them failed, never dialling them twice).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator

import gevent
import gevent.event

from robocall.dispatch.pacing import WINDOW_SECONDS, SendWindow
from robocall.errors import DispatchStopped

# After a send the switch refused for its budget, nothing leaves for this long: FreeSWITCH
# refills its budget once a second, so a full second is sure to reach its next window.
REFUSED_PAUSE_SECONDS = 1.0
# Calls claimed ahead of their send, in seconds of pace: enough to batch claims (a durable
# commit each), few enough that a crash loses little (bench_crash: ~1.7 calls a kill at a
# quarter second).
CLAIM_AHEAD_SECONDS = 0.1


def _ahead(window: SendWindow) -> int:
    return max(1, math.ceil(window.rate * CLAIM_AHEAD_SECONDS))


class _Turns:
    """A first-come, first-served lock; ``first`` jumps the queue (a transfer's bridge)."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: deque[gevent.event.Event] = deque()

    @contextlib.contextmanager
    def held(self, *, first: bool = False) -> Iterator[None]:
        self._acquire(first)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, first: bool) -> None:
        if not self._busy and not self._waiting:
            self._busy = True
            return
        turn = gevent.event.Event()
        if first:
            self._waiting.appendleft(turn)
        else:
            self._waiting.append(turn)
        try:
            turn.wait()
        except BaseException:
            # Killed while waiting: give the turn on if it was just handed over.
            if turn.is_set():
                self._release()
            else:
                self._waiting.remove(turn)
            raise

    def _release(self) -> None:
        if self._waiting:
            self._waiting.popleft().set()  # handed over: still busy, now the next one's
        else:
            self._busy = False


class SendGate:
    """The switch's pace and each organization's, spent at the moment a leg is sent."""

    def __init__(self, switch_rate: float, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.switch = SendWindow(switch_rate)
        self._organizations: dict[str, SendWindow] = {}
        self._organization_turns: dict[str, _Turns] = {}
        self._switch_turns = _Turns()
        self._unsent: dict[str, set[str]] = {}  # organization -> channel uuids claimed, not sent
        self._closed = gevent.event.Event()
        # Checked as each originate leaves: False once this process may no longer dial (its
        # node's lease is not provably its own, robocall.dispatch.lease).
        self.may_send: Callable[[], bool] = lambda: True
        # Told when the switch refused a send: its limits may have changed (read them again).
        self.on_refused: Callable[[], None] = lambda: None

    # --- budgets ------------------------------------------------------------------------------

    def set_switch_rate(self, rate: float) -> None:
        """The switch's pace in legs per second (read from the switch, lowered by settings)."""
        self.switch.set_rate(rate)

    def set_rate(self, organization_id: str, rate: float) -> None:
        """The organization's pace in new calls per second."""
        window = self._organizations.get(organization_id)
        if window is None:
            self._organizations[organization_id] = SendWindow(rate)
            self._organization_turns[organization_id] = _Turns()
        elif window.rate != rate:
            window.set_rate(rate)

    def start_cold(self) -> None:
        """A new process: what an earlier one sent in the last second is not in this window,
        but the switch still counts it. Nothing leaves until that second is surely over."""
        self.switch.pause(self.clock(), WINDOW_SECONDS)

    def refused(self) -> None:
        """The switch refused a send for its budget: let nothing leave until its next window."""
        self.switch.pause(self.clock(), REFUSED_PAUSE_SECONDS)
        self.on_refused()

    # --- claiming -----------------------------------------------------------------------------

    def room(self, organization_id: str) -> int:
        """How many more of the organization's calls to claim now: what its pace and the
        switch's send in CLAIM_AHEAD_SECONDS, less the calls claimed and not yet sent."""
        window = self._organizations.get(organization_id)
        if window is None or self.switch.paused(self.clock()):
            return 0  # nothing is claimed that could not leave at once: a crash would lose it
        unsent = self.unsent(organization_id)
        all_unsent = sum(len(uuids) for uuids in self._unsent.values())
        return max(0, min(_ahead(window) - unsent, _ahead(self.switch) - all_unsent))

    def seconds_until_room(self, organization_id: str) -> float:
        """When to look again at an organization that has no room: once about half of what
        is claimed ahead has been sent (so claims stay batched), and no sooner than its next
        send may leave."""
        window = self._organizations.get(organization_id)
        if window is None:
            return 1.0
        now = self.clock()
        all_unsent = sum(len(uuids) for uuids in self._unsent.values())
        drained = max(
            (self.unsent(organization_id) - _ahead(window) // 2) * window.spacing,
            (all_unsent - _ahead(self.switch) // 2) * self.switch.spacing,
        )
        return max(window.wait_seconds(now), self.switch.wait_seconds(now), drained, 0.001)

    def expect(self, organization_id: str, channel_uuid: str) -> None:
        """A call was claimed: it will come to the gate (counted against :meth:`room`)."""
        self._unsent.setdefault(organization_id, set()).add(channel_uuid)

    def forget(self, organization_id: str, channel_uuid: str) -> None:
        """The call is over (sent or not): it no longer waits to be sent."""
        self._unsent.get(organization_id, set()).discard(channel_uuid)

    def unsent(self, organization_id: str) -> int:
        """The organization's calls claimed and not yet sent."""
        return len(self._unsent.get(organization_id, ()))

    # --- sending ------------------------------------------------------------------------------

    def turn(self, organization_id: str, channel_uuid: str) -> None:
        """Wait for a call's originate to be allowed to leave, and spend its budgets now:
        send it right after this returns. DispatchStopped if the gate closes meanwhile."""
        window = self._organizations.get(organization_id)
        if window is None:  # an organization the dispatcher has not loaded: its default pace
            self.set_rate(organization_id, 1.0)
            window = self._organizations[organization_id]
        with self._organization_turns[organization_id].held():
            self._wait(window)
            with self._switch_turns.held():
                self._wait(self.switch)
                if not self.may_send():
                    raise DispatchStopped("this process no longer holds its node's lease")
                now = self.clock()
                window.record(now)
                self.switch.record(now)
        self.forget(organization_id, channel_uuid)

    def transfer_turn(self) -> None:
        """Wait for a transfer's bridge (a new leg) to be allowed to leave, ahead of every
        waiting originate; send it right after this returns. Never refused: its call is live."""
        with self._switch_turns.held(first=True):
            self._wait(self.switch, stoppable=False)
            self.switch.record(self.clock())

    def _wait(self, window: SendWindow, *, stoppable: bool = True) -> None:
        while True:
            if stoppable and self._closed.is_set():
                raise DispatchStopped("dispatching stopped before the call was sent")
            delay = window.wait_seconds(self.clock())
            if delay <= 0:
                return
            if stoppable:
                self._closed.wait(delay)
            else:
                gevent.sleep(delay)

    def close(self) -> None:
        """Stop sending originates: every waiting one gets DispatchStopped (its call goes back
        to the queue). Transfers of live calls still pass: those calls have their grace."""
        self._closed.set()

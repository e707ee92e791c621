"""The send gate: every new leg waits here for its turn, right before its command leaves.

Calls-per-second is spent when a command is SENT, not when its call is claimed: a claimed call
may wait for its first message, and calls claimed together would otherwise leave bunched (the
lab showed 222 originates in one second at a pace of 100, and the switch's "Throttle Error").
A call's originate waits for its organization's pace, then for the switch's; a transfer's bridge
waits for the switch's only, ahead of every waiting originate (a person is on the line). Turns
are first come, first served, so calls leave in the order they reach the gate.

The gate also bounds claiming: the dispatcher claims no more calls than can be sent within a
tenth of a second of its claim's commit (:meth:`SendGate.room`), so a claimed call never waits
long for its turn and a crash finds few calls claimed and not yet sent (recovery cannot tell
those from calls that were sent and ended, so it records them failed, never dialling them
twice).

With a pool of switches (``dispatch.pool``) each switch has its own pace and its own turns;
an organization's pace is one, whichever switch its calls go to. A switch named "" (or one the
gate does not know) is the first one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import gevent
import gevent.event

from robocall.dispatch.pacing import WINDOW_SECONDS, SendWindow
from robocall.errors import DispatchStopped, LinesTaken

# After a send the switch refused for its budget, nothing leaves for this long: FreeSWITCH
# refills its budget once a second, so a full second is sure to reach its next window.
REFUSED_PAUSE_SECONDS = 1.0
# Calls claimed ahead of their send, in seconds of pace: enough to batch claims (a durable
# commit each), few enough that a crash loses little (bench_crash: ~1.7 calls a kill at a
# quarter second). A store whose claims take longer gets a claim's time of pace instead (see
# SendGate.room), at most CLAIM_AHEAD_MAX_SECONDS.
CLAIM_AHEAD_SECONDS = 0.1
CLAIM_AHEAD_MAX_SECONDS = 0.5


def _ahead(window: SendWindow, seconds: float = CLAIM_AHEAD_SECONDS) -> int:
    return max(1, math.ceil(window.rate * seconds))


def _ahead_seconds(claim_seconds: float) -> float:
    """How far ahead a claim taking ``claim_seconds`` claims: CLAIM_AHEAD_SECONDS, or a claim's
    time when longer, at most CLAIM_AHEAD_MAX_SECONDS."""
    return min(CLAIM_AHEAD_MAX_SECONDS, max(CLAIM_AHEAD_SECONDS, claim_seconds))


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

    def __init__(
        self,
        switch_rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        switches: Sequence[str] = ("",),
    ):
        self.clock = clock
        self._switches = {name: SendWindow(switch_rate) for name in switches or ("",)}
        self._switch_turns = {name: _Turns() for name in self._switches}
        self._first = next(iter(self._switches))
        self._organizations: dict[str, SendWindow] = {}
        self._organization_turns: dict[str, _Turns] = {}
        self._unsent: dict[str, set[str]] = {}  # organization -> channel uuids claimed, not sent
        self._closed = gevent.event.Event()
        # Checked as each originate leaves: False once this process may no longer dial (its
        # node's lease is not provably its own, robocall.dispatch.lease).
        self.may_send: Callable[[], bool] = lambda: True
        # Told when the switch refused a send: its limits may have changed (read them again).
        self.on_refused: Callable[[], None] = lambda: None
        # Checked as each originate leaves, against the freshest count of the organization's
        # lines (the dispatcher's): False when other apps' calls took the line since the claim.
        self.may_dial: Callable[[str, str], bool] = lambda organization_id, channel_uuid: True
        # Told as each originate leaves (its channel uuid, its switch): the switch's health
        # times how long the switch takes to create the channel.
        self.on_sent: Callable[[str, str | None], None] = lambda channel_uuid, switch: None

    # --- budgets ------------------------------------------------------------------------------

    @property
    def switch(self) -> SendWindow:
        """The first switch's pace (the only one without a pool)."""
        return self._switches[self._first]

    def window(self, switch: str | None = None) -> SendWindow:
        """The pace of the switch called ``switch`` (the first one for "" or None)."""
        return self._switches.get(switch or self._first) or self.switch

    def _turns(self, switch: str | None) -> _Turns:
        return self._switch_turns.get(switch or self._first) or self._switch_turns[self._first]

    def set_switch_rate(self, rate: float, switch: str | None = None) -> None:
        """A switch's pace in legs per second (read from it, lowered by settings)."""
        self.window(switch).set_rate(rate)

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
        for window in self._switches.values():
            window.pause(self.clock(), WINDOW_SECONDS)

    def refused(self, switch: str | None = None) -> None:
        """A switch refused a send for its budget: nothing leaves for it until its next window."""
        self.window(switch).pause(self.clock(), REFUSED_PAUSE_SECONDS)
        self.on_refused()

    def _open_windows(self) -> list[SendWindow]:
        now = self.clock()
        return [window for window in self._switches.values() if not window.paused(now)]

    # --- claiming -----------------------------------------------------------------------------

    def room(self, organization_id: str, claim_seconds: float = 0.0) -> int:
        """How many more of the organization's calls to claim now, for a claim that takes
        ``claim_seconds`` to commit: what its pace and the switch's send in CLAIM_AHEAD_SECONDS
        or in a claim's time if longer, less the calls claimed and not yet sent that will still
        be unsent at the commit.

        A claim's calls can leave only once it commits, and claims follow one another: each
        must bring at least a claim's time of sends, or the claims, not the pace, set the rate
        (a tenth of a second's calls a claim of 44-200 ms on the lab's PostgreSQL). And the
        calls claimed before it leave at the pace while it runs: counting them as still waiting
        made each claim take only what the previous one had left room for (3 calls a claim).
        So at the commit a crash finds about a claim's time of calls unsent, at worst (the
        sends stalled) twice that."""
        window = self._organizations.get(organization_id)
        open_windows = self._open_windows()
        if window is None or not open_windows:
            return 0  # nothing is claimed that could not leave at once: a crash would lose it
        seconds = _ahead_seconds(claim_seconds)
        ahead = _ahead(window, seconds)
        switches_ahead = sum(_ahead(w, seconds) for w in open_windows)
        switch_rate = sum(w.rate for w in open_windows)
        leaving = min(ahead, math.floor(min(window.rate, switch_rate) * claim_seconds))
        all_leaving = min(switches_ahead, math.floor(switch_rate * claim_seconds))
        unsent = max(0, self.unsent(organization_id) - leaving)
        all_unsent = max(0, sum(len(uuids) for uuids in self._unsent.values()) - all_leaving)
        return max(0, min(ahead - unsent, switches_ahead - all_unsent))

    def seconds_until_room(self, organization_id: str, claim_seconds: float = 0.0) -> float:
        """When to look again at an organization that has no room: once about half of what
        is claimed ahead (for claims taking ``claim_seconds``, as :meth:`room` counts) has been
        sent (so claims stay batched), and no sooner than its next send may leave."""
        window = self._organizations.get(organization_id)
        if window is None:
            return 1.0
        now = self.clock()
        all_unsent = sum(len(uuids) for uuids in self._unsent.values())
        windows = self._open_windows() or list(self._switches.values())
        rate = sum(w.rate for w in windows)
        switches_wait = min(w.wait_seconds(now) for w in self._switches.values())
        seconds = _ahead_seconds(claim_seconds)
        drained = max(
            (self.unsent(organization_id) - _ahead(window, seconds) // 2) * window.spacing,
            (all_unsent - sum(_ahead(w, seconds) for w in windows) // 2) / rate,
        )
        return max(window.wait_seconds(now), switches_wait, drained, 0.001)

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

    def turn(self, organization_id: str, channel_uuid: str, switch: str | None = None) -> None:
        """Wait for a call's originate to be allowed to leave to ``switch``, and spend its
        budgets now: send it right after this returns. DispatchStopped if the gate closes
        meanwhile, or if ``may_dial`` says the organization's lines filled up since the claim
        (another app's calls came: the call goes back to the queue, its place kept)."""
        window = self._organizations.get(organization_id)
        if window is None:  # an organization the dispatcher has not loaded: its default pace
            self.set_rate(organization_id, 1.0)
            window = self._organizations[organization_id]
        switch_window = self.window(switch)
        # From now the call waits, its turn maybe behind others': a turn handed over late (the
        # hub busy, the process waiting for a core) is made up by the sends after it.
        waiting_since = self.clock()
        with self._organization_turns[organization_id].held():
            self._wait(window)
            with self._turns(switch).held():
                self._wait(switch_window)
                if not self.may_send():
                    raise DispatchStopped("this process no longer holds its node's lease")
                if not self.may_dial(organization_id, channel_uuid):
                    self.forget(organization_id, channel_uuid)
                    raise LinesTaken(f"{organization_id}: its lines filled up before the send")
                now = self.clock()
                window.record(now, waiting_since)
                switch_window.record(now, waiting_since)
                self.on_sent(channel_uuid, switch)
        self.forget(organization_id, channel_uuid)

    def transfer_turn(self, switch: str | None = None) -> None:
        """Wait for a transfer's bridge (a new leg) to be allowed to leave, ahead of every
        waiting originate; send it right after this returns. Never refused: its call is live."""
        switch_window = self.window(switch)
        with self._turns(switch).held(first=True):
            self._wait(switch_window, stoppable=False)
            switch_window.record(self.clock())

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

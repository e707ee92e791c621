"""How a call is followed when the switch is slow or out of reach: the part of a call's runner
that decides, from the switch's own word, whether a channel still lives.

A slow switch is not a lost switch. While the Event Socket is up, a late reply, a late job
result or a long silence is waited for; when robocall needs an answer it asks the switch
(``uuid_exists``) and keeps following as long as the channel lives. After a dropped
connection it waits for the reconnect however long it takes, reads the channel back
(``uuid_dump``) and re-adopts it: an answer it missed starts the flow; a step whose end it may
have missed is probed with a no-op queued behind it. A call is recorded final only with the
switch's word for it, and a call robocall ends itself carries a cause that says so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.queue

from robocall.errors import CommandFailed, RobocallError, SwitchError, SwitchTimeout
from robocall.esl import commands
from robocall.esl.protocol import Event, parse_json_event
from robocall.flow.events import CallReady
from robocall.flow.events import Event as MachineEvent

if TYPE_CHECKING:
    from robocall.calls.runner import CallRunner
    from robocall.esl.client import EslClient
    from robocall.flow.machine import Machine
    from robocall.store.records import CallTicket

log = logging.getLogger(__name__)

# Hangup causes robocall records when it, not the switch or the callee, ended a call (the cause
# sent to FreeSWITCH stays a Q.850 name), or when the switch can no longer say how it ended.
ENDED_INTERNAL_ERROR = "ROBOCALL_INTERNAL_ERROR"  # a bug in the runner
ENDED_EVENTS_LOST = "ROBOCALL_EVENTS_LOST"  # the flow's state went with a dropped connection
ENDED_STEP_FAILED = "ROBOCALL_STEP_FAILED"  # a step could not start (no audio, refused app)
ENDED_TOO_LONG = "ROBOCALL_MAX_CALL_TIME"  # no event for max_call_seconds
CONNECTION_LOST = "SWITCH_CONNECTION_LOST"  # the channel ended while robocall was cut off
# What robocall sends FreeSWITCH when it ends a call itself.
_KILL_CAUSE = "NORMAL_CLEARING"
# A slow switch is not a lost switch: how long robocall waits for the word it needs before it
# asks the switch directly (and then keeps waiting as long as the channel lives).
ORIGINATE_GRACE_SECONDS = 60.0  # beyond originate_timeout, for the job or the channel
KILL_CONFIRM_SECONDS = 30.0  # after robocall ended a call, for its CHANNEL_HANGUP_COMPLETE
# After a reconnect, for a channel whose originate may still be queued in the switch (at least
# this long, and as long as the originate may ring).
SETTLE_SECONDS = 5.0
# A no-op queued behind the running app after a reconnect: its completion arriving before the
# app's says the app's was lost with the connection.
_PROBE_APP = ("sleep", "0")


class _Wake:
    """What a call's :class:`SilenceTimer` puts on the call's queue when its time is up."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WAKE"


WAKE: Any = _Wake()


class SilenceTimer:
    """Tells a call when nothing came on its queue for ``patience`` seconds.

    Waiting with ``queue.get(timeout=...)`` starts and cancels a ``gevent.Timeout`` for every
    event of every call; on the lab switch at 200 lines those timers were ~10 % of robocall's
    CPU, for a patience (minutes, hours) that nearly never runs out. Here one libev timer per
    call is armed for the deadline and re-armed only when it goes off early (events came in
    the meantime, so the deadline moved) or when the patience shrinks. The timer wakes the
    waiting call by putting :data:`WAKE` on its queue; whoever peeks at the queue without this
    class skips it with :meth:`skip_wakes` (a lost wake costs nothing: the next wait re-arms).
    """

    def __init__(
        self, queue: gevent.queue.Queue, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._since = clock()  # the last item handed out (or the start)
        self._timer: Any = None
        self._due: float | None = None  # when the armed timer goes off

    def next_item(self, patience: float) -> Any:
        """The queue's next item; ``gevent.queue.Empty`` when none came for ``patience``
        seconds since the last one (as ``queue.get(timeout=patience)``; the next wait then
        counts from now)."""
        queue = self._queue
        while True:
            if queue.qsize():
                item = queue.get_nowait()
            else:
                deadline = self._since + patience
                now = self._clock()
                if now >= deadline:
                    self._since = now
                    raise gevent.queue.Empty
                if self._due is None or self._due > deadline:
                    self._arm(deadline - now, deadline)
                item = queue.get()
            if item is WAKE:
                continue  # a timer went off: the loop above tells whether the patience ran out
            self._since = self._clock()
            return item

    def close(self) -> None:
        """Stop the timer (the call is over)."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        self._due = None

    def _arm(self, seconds: float, due: float) -> None:
        self.close()
        self._timer = gevent.get_hub().loop.timer(seconds)
        self._timer.start(self._went_off)
        self._due = due

    def _went_off(self) -> None:
        self._due = None
        self._queue.put_nowait(WAKE)

    @staticmethod
    def skip_wakes(queue: gevent.queue.Queue, timeout: float) -> Any:
        """``queue.peek(timeout=...)`` that passes over the timer's wakes (they are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            item = queue.peek(timeout=max(0.0, deadline - time.monotonic()))
            if item is not WAKE:
                return item
            queue.get_nowait()


class SwitchWatch:
    """What a call's runner does to keep following its channel through a slow or lost switch.

    A base of the runner's per-call state (``calls.runner._ActiveCall``), which supplies the
    attributes below and the event handling this part calls back into."""

    runner: CallRunner
    ticket: CallTicket
    machine: Machine
    queue: gevent.queue.Queue
    answered_at: float | None
    ready: bool
    pending: Any  # the step the machine waits on: its event_uuid
    hangup_cause: str
    hangup_cause_final: bool
    channel_created: bool
    job_reported: bool
    own_cause: str
    probe_behind: str | None
    probe_uuid: str | None

    @property
    def switch(self) -> EslClient:
        """The switch the call lives on: the runner keeps talking to that one."""
        return self.runner.switch_for(self.ticket.switch)

    def _on_event(self, event: Event) -> bool:
        raise NotImplementedError

    def _feed(self, event: MachineEvent) -> None:
        raise NotImplementedError

    def _hangup(self, cause: str) -> None:
        raise NotImplementedError

    def _patience(self) -> float:
        """How long to wait for the next word from the switch before asking it directly."""
        if self.own_cause:
            return KILL_CONFIRM_SECONDS
        if not self.channel_created and not self.job_reported:
            return self.runner.settings.originate_timeout_seconds + ORIGINATE_GRACE_SECONDS
        return self.runner.settings.max_call_seconds

    def _on_silence(self) -> bool:
        """Nothing came for a while: ask the switch. True when it says the channel is gone."""
        exists = self._channel_exists()
        if exists is None:
            return False  # slow or cut off: keep waiting (a drop puts DISCONNECTED on the queue)
        if not exists:
            if not self.channel_created and not self.job_reported:
                # FreeSWITCH reports every bgapi it received; this one may still be queued
                # behind a backlog, and giving up now would leave its channel to no one.
                log.warning("call %s: no channel and no originate result yet: waiting",
                            self.ticket.call_id)
                return False
            self.hangup_cause = self.hangup_cause or "UNKNOWN"
            return True
        if self.own_cause:
            self._kill()  # the kill was lost or ignored: send it again
        elif self.channel_created or self.job_reported:
            log.error("call %s: no event in %s s, ending it", self.ticket.call_id,
                      self.runner.settings.max_call_seconds)
            self._end_by_robocall(ENDED_TOO_LONG)
        else:
            self.channel_created = True  # it exists: its CHANNEL_CREATE was missed
        return False

    def _channel_exists(self) -> bool | None:
        """The switch's word on the channel; None when it cannot be had now."""
        try:
            reply = self.switch.api(commands.uuid_exists(self.ticket.channel_uuid))
        except SwitchError as err:
            log.warning("call %s: uuid_exists: %s", self.ticket.call_id, err)
            return None
        return reply.strip() == "true"

    # --- events -------------------------------------------------------------------------------

    def _resync_after_disconnect(self) -> bool | None:
        """The session dropped: events may be lost. Wait for the reconnect (as long as it takes:
        only the switch can say how the call went), then re-adopt the channel if it lives.
        True to keep following, False when the call is over, None when robocall shuts down."""
        switch = self.switch
        while True:
            if switch.closed:
                return None
            try:
                switch.wait_connected(self.runner.settings.reconnect_wait_seconds)
            except SwitchTimeout:
                log.warning("call %s: still waiting for the switch", self.ticket.call_id)
                continue
            dump = self._dump()
            if dump is not None:
                break
        if dump is _GONE and not self.channel_created and not self.job_reported:
            # The originate may still be queued in the switch: give its channel time to show.
            dump = self._settle()
        if dump is _GONE:
            if not self.hangup_cause_final:
                self.own_cause = self.own_cause or CONNECTION_LOST
            return False
        if not isinstance(dump, Event):
            return True  # events came meanwhile: the channel lives and speaks for itself
        self._adopt(dump)
        return True

    def _dump(self) -> Event | object | None:
        """The channel as the switch has it now (``_GONE`` if it has none); None when the
        switch cannot be asked yet."""
        try:
            text = self.switch.api(commands.uuid_dump_json(self.ticket.channel_uuid))
        except CommandFailed:
            return _GONE
        except SwitchError as err:
            log.warning("call %s: uuid_dump: %s", self.ticket.call_id, err)
            if isinstance(err, SwitchTimeout):
                gevent.sleep(1.0)
            return None
        try:
            return parse_json_event(text.encode())
        except RobocallError:
            log.warning("call %s: uuid_dump answered %r", self.ticket.call_id, text[:80])
            return _GONE if "No such channel" in text else None

    def _settle(self) -> Event | object | None:
        """Wait for any word about a channel that may not exist yet; None when events came."""
        try:
            SilenceTimer.skip_wakes(self.queue, max(
                SETTLE_SECONDS, float(self.runner.settings.originate_timeout_seconds)))
        except gevent.queue.Empty:
            return self._dump()
        return None

    def _adopt(self, dump: Event) -> None:
        """Carry on with a live channel after a reconnect, from what the switch says of it."""
        log.info("call %s: re-adopted after the reconnect", self.ticket.call_id)
        self.channel_created = True
        if self.own_cause:
            self._kill()  # robocall had ended it: make sure the switch heard
            return
        if dump.get("Answer-State") != "answered":
            return  # still ringing: its answer (or failure) will come as events
        if self.answered_at is None:
            self._on_event(_as(dump, "CHANNEL_ANSWER"))
        if not self.ready:
            # Answered while robocall was cut off: after &park() the leg waits in park.
            self.ready = True
            self._feed(CallReady())
            return
        if self.machine.finished:
            self._hangup(_KILL_CAUSE)  # robocall's hangup may have been lost
            return
        pending = self.pending
        if pending is not None:
            self._probe(pending.event_uuid)

    def _probe(self, behind: str) -> None:
        probe_uuid = self.runner.new_uuid()
        self.probe_behind, self.probe_uuid = behind, probe_uuid
        try:
            self.switch.execute(self.ticket.channel_uuid, *_PROBE_APP, probe_uuid)
        except SwitchTimeout:
            pass  # sent: its completion will tell
        except SwitchError as err:
            log.warning("call %s: probe after the reconnect failed: %s", self.ticket.call_id, err)
            self.probe_uuid = None

    def _end_by_robocall(self, cause: str) -> None:
        """robocall ends the call: recorded with ``cause``, once the switch confirms the end."""
        self.own_cause = self.own_cause or cause
        self._kill()

    def _kill(self) -> None:
        with contextlib.suppress(SwitchError):
            self.switch.api(commands.uuid_kill(self.ticket.channel_uuid, _KILL_CAUSE))


_GONE = object()  # the switch has no such channel


def _as(dump: Event, name: str) -> Event:
    """A channel dump read as the event it stands for (its headers are the channel's)."""
    return Event({**dump.headers, "Event-Name": name}, "")

"""One greenlet per call: the channel's events -> the call's flow machine -> actions.

The dispatcher hands the runner a claimed call (a :class:`CallTicket`, already committed as
``dialing``); the runner registers the channel's event queue, renders the first message,
originates, and then feeds every event of that channel to a :class:`~robocall.flow.machine.Machine`,
carrying out the actions it returns on the switch and in the store. Each call has its own
queue, so one slow call never stalls another or the Event Socket reader.

What the runner trusts (docs/design.md, "Facts measured here"): the flow starts on the leg's park,
not on its answer; an execution ends with the CHANNEL_EXECUTE_COMPLETE whose Application-UUID
is the Event-UUID robocall chose; digits are read from the variable play_and_get_digits sets,
not from read_result; a bridge's outcome is in originate_disposition; the order of
BACKGROUND_JOB and CHANNEL_HANGUP_COMPLETE for a failed originate varies.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid as uuid_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.queue

from robocall.calls.dialplan import DialPlan
from robocall.calls.observers import Observers
from robocall.calls.translate import (
    bridge_argument,
    bridge_outcome,
    collect_digits_argument,
    collected_digits,
    originate_failure,
    prompt_played,
    switch_time,
)
from robocall.errors import (
    FlowError,
    RobocallError,
    SwitchDisconnected,
    SwitchError,
    SwitchNotConnected,
)
from robocall.esl import commands
from robocall.esl.client import DISCONNECTED, EslClient
from robocall.esl.protocol import Event
from robocall.flow.actions import (
    Action,
    Bridge,
    CallFinished,
    CallOutcome,
    CollectDigits,
    Hangup,
    PlayPrompt,
    StartRecording,
    StepResult,
)
from robocall.flow.compile import Program
from robocall.flow.events import (
    Bridged,
    BridgeFinished,
    CallAnswered,
    CalleeHungUp,
    CallFailed,
    CallReady,
    DigitsCollected,
    PromptFinished,
)
from robocall.flow.events import Event as MachineEvent
from robocall.flow.machine import Machine
from robocall.flow.model import Message
from robocall.logs import call_context
from robocall.store.records import CallTicket

log = logging.getLogger(__name__)

# Messages rendered ahead of the step playing now (the nearest first).
RENDER_AHEAD = 2
# How long a call waits for its first message before dialling anyway (a bound, not a pace:
# a render ends in the TTS timeout well before this).
FIRST_PROMPT_WAIT_SECONDS = 60.0


class CallLog(Protocol):
    """What the runner writes as the call goes (``robocall.store.repo.Repo`` implements it)."""

    def call_leg(self, call_id: int, leg: Mapping[str, str]) -> None:
        """Append one ``monitorData`` entry: ``uuid``, ``type`` (call|transfer), ``dest``."""

    def call_answered(self, call_id: int, answered_at: float) -> None:
        """The callee answered: the call is ``onProgress``."""

    def call_step(self, call_id: int, entry: Mapping[str, Any]) -> None:
        """Append one ``callFlowSteps`` entry."""

    def call_ended(
        self,
        call_id: int,
        *,
        status: str,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
    ) -> bool:
        """The call is final: ``completed`` or ``failed``, with FreeSWITCH's hangup cause.
        True when it was its request's last live call (the request is now completed)."""

    def call_not_dialled(self, call_id: int) -> None:
        """The originate was provably never sent: the call goes back to ``queued``."""


class Prompts(Protocol):
    """Turns a message into audio FreeSWITCH can play (``robocall.calls.prompts``)."""

    def audio(self, message: Message, properties: Mapping[str, str]) -> str:
        """A file path or URL for ``playback``; renders (or finds in the cache) as needed."""


@dataclass(frozen=True)
class RunnerSettings:
    originate_timeout_seconds: int = 30
    transfer_timeout_seconds: int = 30
    recordings_dir: Path = Path("robocall-data/recordings")
    # Bounds on silence from the switch: a call whose events stop longer than this is ended.
    max_call_seconds: float = 4 * 3600.0
    reconnect_wait_seconds: float = 120.0


class CallRunner:
    """Runs calls: one greenlet each, fed by that channel's event queue."""

    def __init__(
        self,
        switch: EslClient,
        log_store: CallLog,
        prompts: Prompts,
        dial_plan: DialPlan,
        settings: RunnerSettings = RunnerSettings(),
        *,
        observers: Observers | None = None,
        clock: Callable[[], float] = time.time,
        new_uuid: Callable[[], str] = lambda: str(uuid_module.uuid4()),
    ) -> None:
        self.switch = switch
        self.log_store = log_store
        self.prompts = prompts
        self.dial_plan = dial_plan
        self.settings = settings
        self.observers = observers if observers is not None else Observers()
        self.clock = clock
        self.new_uuid = new_uuid

    def spawn(
        self,
        ticket: CallTicket,
        program: Program,
        on_done: Callable[[CallTicket, str], None] | None = None,
    ) -> gevent.Greenlet:
        """Run one call in its own greenlet; ``on_done(ticket, status)`` when it is final."""

        def run() -> str:
            status = "failed"
            try:
                status = self.run(ticket, program)
            finally:
                if on_done is not None:
                    on_done(ticket, status)
            return status

        return gevent.spawn(run)

    def run(self, ticket: CallTicket, program: Program) -> str:
        """Run one call to its end; returns its final status (or ``queued`` if never sent)."""
        with call_context(ticket):  # every log line of the call names it (robocall.logs)
            return _ActiveCall(self, ticket, program).run()


@dataclass
class _Pending:
    """The execution the machine waits on: its Event-UUID and what it was."""

    event_uuid: str
    action: PlayPrompt | CollectDigits | Bridge


@dataclass
class _ActiveCall:
    runner: CallRunner
    ticket: CallTicket
    program: Program
    machine: Machine = field(init=False)
    queue: gevent.queue.Queue = field(init=False)
    answered_at: float | None = None
    ended_at: float | None = None  # the switch's hangup time, once HANGUP_COMPLETE told it
    channel_created: bool = False
    ready: bool = False
    pending: _Pending | None = None
    outcome: CallFinished | None = None
    hangup_cause: str = ""
    hangup_cause_final: bool = False  # CHANNEL_HANGUP_COMPLETE seen: the channel is gone
    rendering: dict[str, gevent.Greenlet] = field(default_factory=dict)
    last_render: gevent.Greenlet | None = None  # renders of one call run one after another

    def __post_init__(self) -> None:
        self.machine = Machine(self.program, record=self.ticket.record)

    # --- the whole call ---------------------------------------------------------------------

    def run(self) -> str:
        ticket = self.ticket
        switch = self.runner.switch
        # Registered before the originate: the first events follow the command at once.
        self.queue = switch.channel_queue(ticket.channel_uuid)
        try:
            self._render_ahead()
            self._wait_first_prompt()
            if not self._originate():
                return "queued"
            try:
                self._follow()
            except Exception:
                # A bug must not leave the call `dialing` forever or the line taken.
                log.exception("call %s: runner failed; ending the call", ticket.call_id)
                self._kill("NORMAL_TEMPORARY_FAILURE")
                self.hangup_cause = self.hangup_cause or "ROBOCALL_INTERNAL_ERROR"
            return self._finish()
        finally:
            switch.release_channel(ticket.channel_uuid)
            for greenlet in self.rendering.values():
                greenlet.kill(block=False)

    def _originate(self) -> bool:
        ticket = self.ticket
        runner = self.runner
        command = commands.originate(
            uuid=ticket.channel_uuid,
            dial_string=runner.dial_plan.number(ticket.phone),
            caller_id_number=ticket.caller,
            timeout_seconds=runner.settings.originate_timeout_seconds,
            line_variable=ticket.line_variable,
            call_id=str(ticket.call_id),
            request_id=commands.channel_text(ticket.request_id),
            # A busy transfer target must not hang the robo leg up before robocall records the
            # outcome; after a bridge the leg returns to park and the flow machine decides.
            extra_variables=(("continue_on_fail", "true"), ("hangup_after_bridge", "false")),
        )
        try:
            job = runner.switch.bgapi(command)
        except SwitchNotConnected:
            # Nothing reached the switch: the call can go back to the queue, dialled by no one.
            runner.log_store.call_not_dialled(ticket.call_id)
            return False
        except SwitchError as err:
            # The command may have left: only the switch can say whether a channel exists, so
            # follow it as after a disconnect. Without that proof nobody dials it again.
            log.warning("call %s: originate unconfirmed: %s", ticket.call_id, err)
            self.queue.put_nowait(DISCONNECTED)
            return True
        gevent.spawn(self._wait_job, job)
        runner.observers.call_dialing(ticket)
        return True

    def _wait_job(self, job: Any) -> None:
        try:
            body = job.wait(self.runner.settings.originate_timeout_seconds + 30)
        except RobocallError as err:
            body = f"-ERR {err}"
        self.queue.put_nowait(_JobResult(body))

    def _follow(self) -> None:
        """Feed events to the machine until the channel is gone (or never existed)."""
        limit = self.runner.settings.max_call_seconds
        while True:
            try:
                item = self.queue.get(timeout=limit)
            except gevent.queue.Empty:
                log.error("call %s: no event in %s s, ending it", self.ticket.call_id, limit)
                self._kill("RECOVERY_ON_TIMER_EXPIRE")
                self.hangup_cause = self.hangup_cause or "RECOVERY_ON_TIMER_EXPIRE"
                self._feed_end()
                return
            if item is DISCONNECTED:
                if self._resync_after_disconnect():
                    continue
                return
            if isinstance(item, _JobResult):
                if self._on_job(item.body):
                    return
                continue
            if self._on_event(item):
                return

    # --- events -------------------------------------------------------------------------------

    def _on_job(self, body: str) -> bool:
        """The originate's result; True when the call is over."""
        cause = originate_failure(body)
        if cause is None:
            return False
        self.hangup_cause = self.hangup_cause or cause
        if self.answered_at is None and not self.machine.finished:
            self._feed(CallFailed(cause))
        # Busy: the HANGUP_COMPLETE came first. Unreached: there will be none.
        return not self.channel_created or self.hangup_cause_final

    def _on_event(self, event: Event) -> bool:
        """One event of this channel; True when the channel is gone."""
        name = event.name
        if name == "CHANNEL_CREATE":
            self.channel_created = True
            self.runner.log_store.call_leg(
                self.ticket.call_id,
                {"uuid": self.ticket.channel_uuid, "type": "call", "dest": self.ticket.phone},
            )
        elif name == "CHANNEL_ANSWER":
            if self.answered_at is None:
                # The switch's own time: robocall may read the event late when busy (the lab
                # showed a 1.0 s call reported as 0.74 s while renders held the hub).
                self.answered_at = switch_time(event, "Caller-Channel-Answered-Time") or (
                    self.runner.clock()
                )
                self.runner.log_store.call_answered(self.ticket.call_id, self.answered_at)
                self.runner.observers.call_answered(self.ticket)
                self._feed(CallAnswered())
        elif name == "CHANNEL_PARK" or (
            name == "CHANNEL_EXECUTE" and event.get("Application") == "park"
        ):
            if self.answered_at is not None and not self.ready:
                self.ready = True
                self._feed(CallReady())
        elif name == "CHANNEL_BRIDGE":
            self._on_bridged(event)
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            self._on_execute_complete(event)
        elif name == "CHANNEL_HANGUP":
            # Comes before the completion of the app it cut (a playback then answers
            # PLAYBACK ERROR): the machine must hear of the hangup first.
            self.hangup_cause = event.get("Hangup-Cause") or self.hangup_cause
            self._feed_end()
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.hangup_cause = event.get("Hangup-Cause") or self.hangup_cause or "UNKNOWN"
            self.hangup_cause_final = True
            self.ended_at = switch_time(event, "Caller-Channel-Hangup-Time")
            self._feed_end()
            return True
        return False

    def _on_bridged(self, event: Event) -> None:
        pending = self.pending
        if pending is None or not isinstance(pending.action, Bridge):
            return
        transfer = pending.action.transfer
        other = event.get("Other-Leg-Unique-ID") or event.get("Bridge-B-Unique-ID") or ""
        dest = transfer.target
        self.runner.log_store.call_leg(
            self.ticket.call_id, {"uuid": other, "type": "transfer", "dest": dest}
        )
        self._feed(Bridged())

    def _on_execute_complete(self, event: Event) -> None:
        pending = self.pending
        if pending is None or event.application_uuid != pending.event_uuid:
            return
        self.pending = None
        action = pending.action
        if isinstance(action, PlayPrompt):
            self._feed(PromptFinished(ok=prompt_played(event)))
        elif isinstance(action, CollectDigits):
            self._feed(DigitsCollected(collected_digits(event)))
        else:
            self._feed(BridgeFinished(bridge_outcome(event)))

    def _feed_end(self) -> None:
        """The channel is gone: tell the machine, if it still runs."""
        if self.machine.finished:
            return
        cause = self.hangup_cause or "UNKNOWN"
        event = CalleeHungUp(cause) if self.answered_at is not None else CallFailed(cause)
        self._feed(event)

    def _resync_after_disconnect(self) -> bool:
        """The Event Socket dropped: events may be lost. True to keep following the call."""
        switch = self.runner.switch
        try:
            switch.wait_connected(self.runner.settings.reconnect_wait_seconds)
            exists = switch.api(commands.uuid_exists(self.ticket.channel_uuid)).strip() == "true"
        except SwitchError as err:
            log.error("call %s: switch unreachable, result unknown: %s", self.ticket.call_id, err)
            exists = False
        if exists:
            # What happened meanwhile (an answer, an execution's end, a hangup robocall sent
            # that never left) may be lost with the connection, and nothing else would move
            # the flow on: end the channel cleanly rather than wait for events that will not
            # come. Its CHANNEL_HANGUP_COMPLETE ends the call here.
            self._kill("NORMAL_CLEARING")
            return True
        self.hangup_cause = self.hangup_cause or "SWITCH_CONNECTION_LOST"
        self._feed_end()
        return False

    def _feed(self, event: MachineEvent) -> None:
        """Feed the machine and carry out what it answers. An event the machine refuses in its
        state (a bridge reported after the leg hung up, say) is logged and dropped: the switch
        reports what happened, and a late report must not end the call's bookkeeping."""
        try:
            actions = self.machine.feed(event)
        except FlowError as err:
            log.warning("call %s: ignoring %r: %s", self.ticket.call_id, event, err)
            return
        self._apply(actions)

    # --- actions ------------------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, StepResult):
                entry = action.as_status_entry()
                self.runner.log_store.call_step(self.ticket.call_id, entry)
                self.runner.observers.call_step(self.ticket, entry)
            elif isinstance(action, CallFinished):
                self.outcome = action
            elif isinstance(action, Hangup):
                self._hangup(action.cause)
            elif isinstance(action, StartRecording):
                self._start_recording()
            else:
                self._execute(action)

    def _execute(self, action: PlayPrompt | CollectDigits | Bridge) -> None:
        try:
            app, arg = self._application(action)
        except RobocallError as err:
            # Nothing to play (a render failed, say). The greenlet must not die with the
            # channel parked and the call onProgress for ever: a play step fails with
            # error_playback; for a gather the machine has no such event, so the call is ended.
            log.error("call %s: cannot run step %s: %s", self.ticket.call_id, action.step_id, err)
            if isinstance(action, PlayPrompt):
                self._feed(PromptFinished(ok=False))
            else:
                self._kill("NORMAL_TEMPORARY_FAILURE")
            return
        event_uuid = self.runner.new_uuid()
        # Registered before sending: the completion can follow the command at once.
        self.pending = _Pending(event_uuid, action)
        try:
            self.runner.switch.execute(self.ticket.channel_uuid, app, arg, event_uuid)
        except SwitchError as err:
            log.warning("call %s: %s failed to start: %s", self.ticket.call_id, app, err)
            if isinstance(err, SwitchDisconnected):
                # Whether it started is unknown, and its completion would be lost with the
                # connection: left pending, so the resync after the reconnect ends the call
                # cleanly instead of waiting on an execution that may never report.
                return
            self.pending = None
            self._kill("NORMAL_TEMPORARY_FAILURE")
            return
        # While this plays, render what may follow.
        self._render_ahead()

    def _application(self, action: PlayPrompt | CollectDigits | Bridge) -> tuple[str, str]:
        if isinstance(action, PlayPrompt):
            return "playback", self._audio(action.step_id, action.message)
        if isinstance(action, CollectDigits):
            prompt = self._audio(action.step_id, action.message)
            return "play_and_get_digits", collect_digits_argument(action, prompt)
        timeout = self.runner.settings.transfer_timeout_seconds
        return "bridge", bridge_argument(
            self.ticket, action.transfer, self.runner.dial_plan, timeout
        )

    def _audio(self, step_id: str, message: Message) -> str:
        greenlet = self.rendering.pop(step_id, None)
        if greenlet is not None:
            return str(greenlet.get())
        return self.runner.prompts.audio(message, self.ticket.properties)

    def _render_ahead(self) -> None:
        """Start rendering what may play next, one message after another, nearest first.

        Only the nearest few, and in order: the TTS cache renders two at a time for the whole
        process, and a call's later messages must not hold up another call's first one (the lab
        showed p99 answer -> first audio of 920 ms when every message of every call raced).
        Called again as each step starts, so later messages are ready when they are due.
        """
        for upcoming in self.machine.upcoming_messages()[:RENDER_AHEAD]:
            if upcoming.step_id not in self.rendering:
                self.last_render = gevent.spawn(
                    self._render_after, self.last_render, upcoming.message
                )
                self.rendering[upcoming.step_id] = self.last_render

    def _render_after(self, previous: gevent.Greenlet | None, message: Message) -> str:
        if previous is not None:
            previous.join()
        return self.runner.prompts.audio(message, self.ticket.properties)

    def _wait_first_prompt(self) -> None:
        """Dial only once the first message is on disk: a real callee may answer at once, and
        dead air after "hello?" makes people hang up (docs/design.md, "TTS"). A failed render is
        reported when the message is due, as before."""
        upcoming = self.machine.upcoming_messages()
        first = self.rendering.get(upcoming[0].step_id) if upcoming else None
        if first is not None:
            first.join(timeout=FIRST_PROMPT_WAIT_SECONDS)

    def _start_recording(self) -> None:
        path = self.runner.settings.recordings_dir.resolve() / f"{self.ticket.call_id}.wav"
        try:
            self.runner.switch.execute(
                self.ticket.channel_uuid, "record_session", str(path), self.runner.new_uuid()
            )
        except SwitchError as err:
            log.warning("call %s: recording did not start: %s", self.ticket.call_id, err)

    def _hangup(self, cause: str) -> None:
        try:
            self.runner.switch.hangup(self.ticket.channel_uuid, cause)
        except SwitchError as err:
            log.info("call %s: hangup: %s", self.ticket.call_id, err)

    def _kill(self, cause: str) -> None:
        with contextlib.suppress(SwitchError):
            self.runner.switch.api(commands.uuid_kill(self.ticket.channel_uuid, cause))

    # --- the end ------------------------------------------------------------------------------

    def _finish(self) -> str:
        ticket = self.ticket
        now = self.ended_at or self.runner.clock()
        outcome = self.outcome
        if outcome is None:
            status = CallOutcome.COMPLETED if self.answered_at is not None else CallOutcome.FAILED
        else:
            status = outcome.status
        duration = None if self.answered_at is None else max(0.0, now - self.answered_at)
        cause = self.hangup_cause or (outcome.cause if outcome else "") or "UNKNOWN"
        request_completed = self.runner.log_store.call_ended(
            ticket.call_id,
            status=status.value,
            hangup_cause=cause,
            ended_at=now,
            duration_seconds=duration,
        )
        observers = self.runner.observers
        observers.call_ended(ticket, status.value, cause, duration)
        if request_completed:
            observers.request_completed(ticket)
        return status.value


@dataclass(frozen=True)
class _JobResult:
    """The originate's BACKGROUND_JOB body, put on the call's own queue."""

    body: str

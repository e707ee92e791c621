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

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.queue

from robocall.amd.detection import DetectionSettings
from robocall.calls.dialplan import DialPlan
from robocall.calls.following import (
    ENDED_EVENTS_LOST,
    ENDED_INTERNAL_ERROR,
    ENDED_STEP_FAILED,
    SilenceTimer,
    SwitchWatch,
)
from robocall.calls.machines import MACHINE_DETECTED, AmdFinding, MachineHandling
from robocall.calls.observers import Observers
from robocall.calls.progress import ProgressWriter
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
    DispatchStopped,
    FlowError,
    RobocallError,
    SwitchDisconnected,
    SwitchError,
    SwitchNotConnected,
    SwitchTimeout,
)
from robocall.esl import commands
from robocall.esl.client import DISCONNECTED, EslClient, new_uuid
from robocall.esl.protocol import Event
from robocall.flow.actions import (
    Action,
    Bridge,
    CallFinished,
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
from robocall.flow.model import MachineDetection, Message
from robocall.flow.status import CallStatus, Leg, LegKind
from robocall.logs import call_context
from robocall.store.progress import ProgressWrite
from robocall.store.records import CallTicket

log = logging.getLogger(__name__)

# The call's final write is retried this often, this far apart, before the call is left to the
# next start's recovery.
FINAL_WRITE_ATTEMPTS = 12
FINAL_WRITE_RETRY_SECONDS = 5.0
# Messages rendered ahead of the step playing now (the nearest first).
RENDER_AHEAD = 2
# How long a call waits for its first message before dialling anyway (a bound, not a pace:
# a render ends in the TTS timeout well before this).
FIRST_PROMPT_WAIT_SECONDS = 60.0
# The cause of a call still live when a shutdown's grace ran out: robocall hung it up.
SHUTDOWN_CAUSE = "ROBOCALL_SHUTDOWN"
# How long a call ended at shutdown waits for the switch to confirm its hangup.
SHUTDOWN_HANGUP_SECONDS = 10.0
# What FreeSWITCH answers an originate it refuses before creating a session: over its
# sessions-per-second ("Throttle Error") or its max-sessions. No SIP left, no channel existed.
SWITCH_REFUSAL_CAUSE = "DESTINATION_OUT_OF_ORDER"
# A refused originate's job can overtake its channel's first event only by a few ms (FreeSWITCH's
# event threads); a channel event within this time proves the dial was not refused before SIP.
REFUSAL_SETTLE_SECONDS = 0.25


class CallLog(Protocol):
    """What the runner writes as the call goes (``robocall.store.repo.Repo`` implements it)."""

    def call_leg(self, call_id: int, leg: Leg) -> None:
        """Record one FreeSWITCH leg of the call (the robo call, or a transfer's)."""

    def call_answered(self, call_id: int, answered_at: float) -> None:
        """The callee answered: the call is ``onProgress``."""

    def call_answered_by(self, call_id: int, answered_by: str, after_ms: int) -> None:
        """Answering-machine detection's verdict (``answeredBy``), ms after the answer."""

    def call_step(self, call_id: int, result: StepResult) -> None:
        """Record one step result (a running transfer's final result replaces its progress)."""

    def call_ended(
        self,
        call_id: int,
        *,
        status: CallStatus,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
    ) -> bool:
        """The call is final: ``completed`` or ``failed``, with FreeSWITCH's hangup cause.
        True when it was its request's last live call (the request is now completed)."""

    def call_not_dialled(self, call_id: int) -> None:
        """The originate was provably never sent: the call goes back to ``queued``."""

    def write_progress(self, writes: list[ProgressWrite]) -> list[Any]:
        """Many calls' writes (the methods above, by name) in one transaction, in order; each
        one's result or exception (the group commit of ``robocall.calls.progress``)."""


class SendTurns(Protocol):
    """Where a new leg waits for its turn to leave (``robocall.dispatch.sending.SendGate``):
    calls-per-second is spent as each originate or bridge is sent."""

    def turn(self, organization_id: str, channel_uuid: str, switch: str | None = None) -> None:
        """Block until the call's originate may leave (DispatchStopped: it must not)."""

    def transfer_turn(self, switch: str | None = None) -> None:
        """Block until a transfer's bridge may leave (DispatchStopped: it must not)."""

    def refused(self, switch: str | None = None) -> None:
        """The switch refused a send for its budget."""


class Prompts(Protocol):
    """Turns a message into audio FreeSWITCH can play (``robocall.calls.prompts``)."""

    def audio(self, message: Message, properties: Mapping[str, str]) -> str:
        """A file path or URL for ``playback``; renders (or finds in the cache) as needed."""

    def audio_if_ready(self, message: Message, properties: Mapping[str, str]) -> str | None:
        """The same when the cache already holds it (no render, no wait), else None."""


@dataclass(frozen=True)
class RunnerSettings:
    originate_timeout_seconds: int = 30
    transfer_timeout_seconds: int = 30
    recordings_dir: Path = Path("robocall-data/recordings")
    # Bounds on silence from the switch: a call whose events stop longer than this is ended.
    max_call_seconds: float = 4 * 3600.0
    reconnect_wait_seconds: float = 120.0
    detection: DetectionSettings = DetectionSettings()


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
        send_gate: SendTurns | None = None,
        clock: Callable[[], float] = time.time,
        new_uuid: Callable[[], str] = new_uuid,
        switches: Mapping[str, EslClient] | None = None,
    ) -> None:
        self.switch = switch  # the first switch: the one a call without a switch name uses
        # A pool's switches by name (dispatch.pool): each call talks to the one it lives on.
        self.switches: Mapping[str, EslClient] = switches or {}
        # In a pool, the dispatcher's account of the events its line count has read from each
        # switch ("1234.5678.90", in pool order): stamped on every originate.
        self.lines_seen: Callable[[], str] | None = None
        self.send_gate = send_gate
        self.dialing_stopped = gevent.event.Event()
        self._active: dict[str, _ActiveCall] = {}  # channel uuid -> call being run
        self.log_store = log_store
        # Every call's progress, written in order, many calls per transaction.
        self.progress = ProgressWriter(log_store)
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
        on_done: Callable[[CallTicket, CallStatus], None] | None = None,
        machine_detection: MachineDetection | None = None,
    ) -> gevent.Greenlet:
        """Run one call in its own greenlet; ``on_done(ticket, status)`` when it is final."""

        def run() -> CallStatus:
            status = CallStatus.FAILED
            try:
                status = self.run(ticket, program, machine_detection)
            finally:
                if on_done is not None:
                    on_done(ticket, status)
            return status

        return gevent.spawn(run)

    def run(
        self,
        ticket: CallTicket,
        program: Program,
        machine_detection: MachineDetection | None = None,
    ) -> CallStatus:
        """Run one call to its end; returns its final status (or ``queued`` if never sent)."""
        with call_context(ticket):  # every log line of the call names it (robocall.logs)
            call = _ActiveCall(self, ticket, program)
            call.amd = MachineHandling(call, machine_detection) if machine_detection else None
            self._active[ticket.channel_uuid] = call
            try:
                return call.run()
            finally:
                self._active.pop(ticket.channel_uuid, None)

    def switch_for(self, name: str) -> EslClient:
        """The client of the switch called ``name`` (the first one for "")."""
        return self.switches.get(name) or self.switch

    def stop_dialing(self) -> None:
        """Shutdown: calls not yet sent go back to the queue instead of being dialled."""
        self.dialing_stopped.set()

    def end_live_calls(self, cause: str) -> None:
        """Shutdown's grace is over: hang every live call up; each is recorded final with
        ``cause`` (and its observers told) once the switch confirms, or after a bound."""
        for call in list(self._active.values()):
            call.queue.put_nowait(_EndNow(cause))


@dataclass
class _Pending:
    """The execution the machine waits on: its Event-UUID and what it was."""

    event_uuid: str
    action: PlayPrompt | CollectDigits | Bridge


@dataclass
class _ActiveCall(SwitchWatch):
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
    refused: bool = False  # the switch refused the originate before any SIP left
    shutting_down: bool = False  # shutdown's grace ran out: robocall hangs the call up now
    amd: MachineHandling | None = None  # answering-machine detection, when the request asks
    job_reported: bool = False  # the originate's BACKGROUND_JOB came
    # Set when robocall ended the call (or cannot learn how it ended): the recorded cause.
    own_cause: str = ""
    probe_behind: str | None = None  # Event-UUID of the app a reconnect probe is queued behind
    probe_uuid: str | None = None
    rendering: dict[str, gevent.Greenlet] = field(default_factory=dict)
    rendered: dict[str, str] = field(default_factory=dict)  # step -> audio found in the cache
    last_render: gevent.Greenlet | None = None  # renders of one call run one after another

    def __post_init__(self) -> None:
        self.machine = Machine(self.program, record=self.ticket.record)

    # --- the whole call ---------------------------------------------------------------------

    def run(self) -> CallStatus:
        ticket = self.ticket
        switch = self.switch
        # Registered before the originate: the first events follow the command at once.
        self.queue = switch.channel_queue(ticket.channel_uuid)
        try:
            try:
                self._render_ahead()
                self._wait_first_prompt()
                sent = self._originate()
            except Exception:
                # Nothing was sent (the originate raises before its command leaves), but the
                # call must not stay `dialing` for ever: it ends failed, its observers told.
                log.exception("call %s: could not be dialled", ticket.call_id)
                self.own_cause = ENDED_INTERNAL_ERROR
                return self._finish()
            if not sent:
                return CallStatus.QUEUED
            try:
                if not self._follow():
                    # robocall is shutting down cut off from the switch: the call stays
                    # dialing/onProgress in the store, and the next start's recovery settles it.
                    answered = self.answered_at is not None
                    return CallStatus.ON_PROGRESS if answered else CallStatus.DIALING
            except Exception:
                # A bug must not leave the call `dialing` forever or the line taken.
                log.exception("call %s: runner failed; ending the call", ticket.call_id)
                self._kill()
                self.own_cause = self.own_cause or ENDED_INTERNAL_ERROR
            if self.refused:
                # The switch refused it before any SIP left: back to the head of the queue,
                # its place kept, not an attempt of the retry policy.
                log.warning("call %s: the switch refused the dial (%s); queued again",
                            ticket.call_id, SWITCH_REFUSAL_CAUSE)
                self.runner.progress.flush(ticket.call_id)
                self.runner.log_store.call_not_dialled(ticket.call_id)
                if self.runner.send_gate is not None:
                    self.runner.send_gate.refused(ticket.switch)
                return CallStatus.QUEUED
            return self._finish()
        finally:
            if self.amd is not None:
                self.amd.stop()
            switch.release_channel(ticket.channel_uuid)
            for greenlet in self.rendering.values():
                greenlet.kill(block=False)

    def _originate(self) -> bool:
        """Send the originate; False when the call went back to the queue unsent."""
        ticket = self.ticket
        runner = self.runner
        try:
            if runner.dialing_stopped.is_set():
                raise DispatchStopped("dispatching stopped before the call was sent")
            if runner.send_gate is not None:
                # Its turn at the organization's and the switch's pace: spent now, as it leaves.
                runner.send_gate.turn(ticket.organization_id, ticket.channel_uuid, ticket.switch)
        except DispatchStopped:
            runner.log_store.call_not_dialled(ticket.call_id)
            return False
        # A busy transfer target must not hang the robo leg up before robocall records the
        # outcome; after a bridge the leg returns to park and the flow machine decides.
        extra = [("continue_on_fail", "true"), ("hangup_after_bridge", "false")]
        if runner.lines_seen is not None:
            # In a pool: which of each switch's events the line count it was sent on had read
            # (docs/pool.md), taken after the send-time line check, as the originate leaves.
            extra.append(("robocall_lines_seen", runner.lines_seen()))
        command = commands.originate(
            uuid=ticket.channel_uuid,
            dial_string=runner.dial_plan.number(ticket.phone),
            caller_id_number=ticket.caller,
            timeout_seconds=runner.settings.originate_timeout_seconds,
            line_variable=ticket.line_variable,
            call_id=str(ticket.call_id),
            request_id=commands.channel_text(ticket.request_id),
            extra_variables=tuple(extra),
            # Detection's read-leg recording, started by the switch at the answer itself: a
            # command sent once robocall reads CHANNEL_ANSWER would miss the callee's first
            # words whenever robocall or the switch is busy (docs/amd.md).
            api_on_answer=self.amd.detection.start_command() if self.amd is not None else None,
        )
        try:
            job = self.switch.bgapi(command)
        except SwitchNotConnected:
            # Nothing reached the switch: the call can go back to the queue, dialled by no one.
            runner.log_store.call_not_dialled(ticket.call_id)
            return False
        except SwitchError as err:
            # Part of the command may have left and the session dropped with it (its
            # DISCONNECTED marker is on the queue): only the switch can say whether a channel
            # exists, so follow it as after any disconnect. Without that proof nobody dials it
            # again.
            log.warning("call %s: originate unconfirmed: %s", ticket.call_id, err)
            return True
        job.when_done(self._job_done)
        runner.progress.notify(ticket.call_id, runner.observers.call_dialing, ticket)
        return True

    def _job_done(self, outcome: str | BaseException) -> None:
        """The originate's result, onto the call's queue when the switch gives it (in the hub:
        no greenlet per call waits for it). A late job is waited for as long as the session
        lives; a dropped session leaves the verdict to the resync (the DISCONNECTED marker)."""
        if isinstance(outcome, SwitchDisconnected):
            return
        if isinstance(outcome, BaseException):  # the switch refused the bgapi itself
            outcome = f"-ERR {outcome}"
        self.queue.put_nowait(_JobResult(outcome))

    def _follow(self) -> bool:
        """Feed events to the machine until the switch says the channel is gone (or never
        existed). False when robocall shuts down cut off from the switch, the call unsettled."""
        silence = SilenceTimer(self.queue)
        try:
            return self._follow_until_gone(silence)
        finally:
            silence.close()

    def _follow_until_gone(self, silence: SilenceTimer) -> bool:
        while True:
            try:
                item = silence.next_item(
                    SHUTDOWN_HANGUP_SECONDS if self.shutting_down else self._patience()
                )
            except gevent.queue.Empty:
                if self.shutting_down:
                    # The switch did not confirm the shutdown's hangup in time: the call is
                    # recorded final with robocall's cause all the same (the books settle).
                    log.error("call %s: the switch did not confirm its hangup in %s s",
                              self.ticket.call_id, SHUTDOWN_HANGUP_SECONDS)
                    return True
                if self._on_silence():
                    return True
                continue
            if isinstance(item, _EndNow):
                self._end_now(item.cause)
                continue
            if item is DISCONNECTED:
                if self.shutting_down:
                    return True  # ending at shutdown: no reconnect to wait for
                verdict = self._resync_after_disconnect()
                if verdict is None:
                    return False
                if verdict:
                    continue
                return True
            if isinstance(item, AmdFinding):
                if self.amd is not None:
                    self.amd.on_finding(item.finding)
                continue
            if isinstance(item, _JobResult):
                if self._on_job(item.body):
                    return True
                continue
            if self._on_event(item):
                return True

    def _on_job(self, body: str) -> bool:
        """The originate's result; True when the call is over."""
        self.job_reported = True
        cause = originate_failure(body)
        if cause is None:
            return False
        if self._refused_before_sip(cause):
            self.refused = True
            return True
        self.hangup_cause = self.hangup_cause or cause
        if self.answered_at is None and not self.machine.finished:
            self._feed(CallFailed(cause))
        # Busy: the HANGUP_COMPLETE came first. Unreached: there will be none.
        return not self.channel_created or self.hangup_cause_final

    def _refused_before_sip(self, cause: str) -> bool:
        """Whether the switch refused the originate before creating a session (its budget
        was spent): then no channel event ever comes for it."""
        if cause != SWITCH_REFUSAL_CAUSE or self.channel_created:
            return False
        try:
            item = SilenceTimer.skip_wakes(self.queue, REFUSAL_SETTLE_SECONDS)
        except gevent.queue.Empty:
            return True
        # An event of the channel: it existed, a real failure. A marker (a disconnect, the
        # shutdown) says nothing about the channel: the refusal stands.
        return not isinstance(item, Event)

    def _end_now(self, cause: str) -> None:
        """Shutdown: hang the channel up; the call is recorded with ``cause``."""
        self.shutting_down = True
        self._end_by_robocall(cause)

    def _on_event(self, event: Event) -> bool:
        """One event of this channel; True when the channel is gone."""
        name = event.name
        if name == "CHANNEL_CREATE":
            self.channel_created = True
            self.runner.progress.leg(
                self.ticket.call_id,
                Leg(self.ticket.channel_uuid, LegKind.CALL, self.ticket.phone, self.ticket.switch),
            )
        elif name == "CHANNEL_ANSWER":
            if self.answered_at is None:
                # The switch's own time: robocall may read the event late when busy (the lab
                # showed a 1.0 s call reported as 0.74 s while renders held the hub).
                self.answered_at = switch_time(event, "Caller-Channel-Answered-Time") or (
                    self.runner.clock()
                )
                self.runner.progress.answered(
                    self.ticket.call_id, self.answered_at,
                    self.runner.observers.call_answered, self.ticket,
                )
                if self.amd is not None:
                    self.amd.start()  # beside the flow: a person hears no extra silence
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
        self.runner.progress.leg(
            self.ticket.call_id,
            Leg(other, LegKind.TRANSFER, dest, self.ticket.switch),  # a bridge: the call's switch
        )
        self._feed(Bridged())

    def _on_execute_complete(self, event: Event) -> None:
        if self.amd is not None and self.amd.on_execute_complete(event):
            return
        pending = self.pending
        application_uuid = event.application_uuid
        if application_uuid is not None and application_uuid == self.probe_uuid:
            self.probe_uuid = None
            if pending is not None and pending.event_uuid == self.probe_behind:
                # The probe queued behind the step ran first: the step's completion came
                # while robocall was cut off, and what it said (digits, a bridge's outcome)
                # is lost. The flow cannot go on truthfully.
                log.error("call %s: the step's end was lost with the connection",
                          self.ticket.call_id)
                self.pending = None
                self._end_by_robocall(ENDED_EVENTS_LOST)
            return
        if pending is None or application_uuid != pending.event_uuid:
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
        """The channel is gone: tell the machine, if it still runs. Not when robocall ended
        the call itself: the machine would record a callee's hangup that never happened."""
        if self.machine.finished or self.own_cause:
            return
        cause = self.hangup_cause or "UNKNOWN"
        event = CalleeHungUp(cause) if self.answered_at is not None else CallFailed(cause)
        self._feed(event)

    def _feed(self, event: MachineEvent) -> None:
        """Feed the machine and carry out what it answers. An event the machine refuses in its
        state (a bridge reported after the leg hung up, say) is logged and dropped: the switch
        reports what happened, and a late report must not end the call's bookkeeping."""
        if self.amd is not None and self.amd.flow_stopped:
            return  # a machine answered and robocall leaves its message: the flow is over
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
                self.runner.progress.step(
                    self.ticket.call_id, action, self.runner.observers.call_step, self.ticket,
                    action,
                )
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
                self._end_by_robocall(ENDED_STEP_FAILED)
            return
        if isinstance(action, Bridge) and self.runner.send_gate is not None:
            # a new leg on the call's own switch: it spends that switch's pace
            self.runner.send_gate.transfer_turn(self.ticket.switch)
        event_uuid = self.runner.new_uuid()
        # Registered before sending: the completion can follow the command at once.
        self.pending = _Pending(event_uuid, action)
        try:
            self.switch.execute(self.ticket.channel_uuid, app, arg, event_uuid)
        except SwitchError as err:
            log.warning("call %s: %s failed to start: %s", self.ticket.call_id, app, err)
            if isinstance(err, (SwitchDisconnected, SwitchTimeout)):
                # Sent, or cut off: left pending. A late reply is only late (the completion
                # still comes); after a drop the resync finds out whether it ran.
                return
            self.pending = None
            if "invalid session" in str(err) or self.hangup_cause:
                return  # the channel is hanging up: its events end the call
            self._end_by_robocall(ENDED_STEP_FAILED)
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
        found = self.rendered.pop(step_id, None)
        if found is not None:
            return found
        greenlet = self.rendering.pop(step_id, None)
        if greenlet is not None:
            return str(greenlet.get())
        return self.runner.prompts.audio(message, self.ticket.properties)

    def _render_ahead(self) -> None:
        """Start rendering what may play next, one message after another, nearest first.

        Only the nearest few, and in order: the TTS cache renders two at a time for the whole
        process, and a call's later messages must not hold up another call's first one (the lab
        showed p99 answer -> first audio of 920 ms when every message of every call raced).
        Called again as each step starts, so later messages are ready when they are due. A
        message already in the cache (a first message the prefetcher rendered, nearly always)
        is looked up here: no greenlet to spawn, nothing for the dial to wait on.
        """
        prompts = self.runner.prompts
        for upcoming in self.machine.upcoming_messages()[:RENDER_AHEAD]:
            step_id = upcoming.step_id
            if step_id in self.rendering or step_id in self.rendered:
                continue
            found = prompts.audio_if_ready(upcoming.message, self.ticket.properties)
            if found is not None:
                self.rendered[step_id] = found
            else:
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
            # A shutdown does not wait for it: the call goes back to the queue unsent.
            gevent.wait([first, self.runner.dialing_stopped], timeout=FIRST_PROMPT_WAIT_SECONDS,
                        count=1)

    def _start_recording(self) -> None:
        path = self.runner.settings.recordings_dir.resolve() / f"{self.ticket.call_id}.wav"
        try:
            self.switch.execute(
                self.ticket.channel_uuid, "record_session", str(path), self.runner.new_uuid()
            )
        except SwitchError as err:
            log.warning("call %s: recording did not start: %s", self.ticket.call_id, err)

    def _hangup(self, cause: str) -> None:
        try:
            self.switch.hangup(self.ticket.channel_uuid, cause)
        except SwitchError as err:
            log.info("call %s: hangup: %s", self.ticket.call_id, err)

    # --- the end ------------------------------------------------------------------------------

    def _finish(self) -> CallStatus:
        ticket = self.ticket
        now = self.ended_at or self.runner.clock()
        outcome = self.amd.outcome() if self.amd is not None else None
        outcome = outcome or self.outcome
        if self.shutting_down or (
            self.own_cause and (outcome is None or outcome.status is not CallStatus.COMPLETED)
        ):
            # robocall cut the flow short (or lost sight of its end): not what the callee did.
            status, cause = CallStatus.FAILED, self.own_cause
        else:
            if outcome is None:
                answered = self.answered_at is not None
                status = CallStatus.COMPLETED if answered else CallStatus.FAILED
            else:
                status = outcome.status
            cause = (
                self.hangup_cause or (outcome.cause if outcome else "") or self.own_cause
                or "UNKNOWN"
            )
        duration = None if self.answered_at is None else max(0.0, now - self.answered_at)
        if self.amd is not None and duration is not None:
            self.amd.call_over(int(duration * 1000))
        if not self.own_cause and self.amd is not None and self.amd.hung_up_on_machine:
            cause = MACHINE_DETECTED
        for attempt in range(FINAL_WRITE_ATTEMPTS):
            try:
                # Behind the call's other writes, in the writer's order: when this returns,
                # all of them are committed and their observers told.
                request_completed = self.runner.progress.call_ended(
                    ticket.call_id,
                    status=status,
                    hangup_cause=cause,
                    ended_at=now,
                    duration_seconds=duration,
                )
                break
            except Exception:
                # A store out of connections for a moment must not lose the call's end (a
                # restart's recovery would then record it ROBOCALL_RESTARTED).
                if attempt + 1 == FINAL_WRITE_ATTEMPTS:
                    raise
                log.exception("call %s: recording its end failed; retrying", ticket.call_id)
                gevent.sleep(FINAL_WRITE_RETRY_SECONDS)
        observers = self.runner.observers
        observers.call_ended(ticket, status, cause, duration)
        if request_completed:
            observers.request_completed(ticket)
        return status


@dataclass(frozen=True)
class _EndNow:
    """Put on a call's queue at shutdown: hang up now, record the call with ``cause``."""

    cause: str


@dataclass(frozen=True)
class _JobResult:
    """The originate's BACKGROUND_JOB body, put on the call's own queue."""

    body: str

"""What a call does when answering-machine detection speaks (a request's ``machineDetection``).

The runner starts :class:`MachineHandling` at the answer; detection runs in its own greenlet
(``robocall.amd.detection``) and its findings come back on the call's own queue as
:class:`AmdFinding`, so the call greenlet alone acts on the call:

- every verdict is stored (``answeredBy``, ``answeredByMs``) and told to the observers;
- ``human`` / ``unknown``, or mode ``continue``: nothing else changes;
- ``machine`` + ``hangup``: robocall hangs up at once; the call ends ``failed`` with hangupCause
  ``MACHINE_DETECTED`` (a retry policy whose ``on`` holds ``machine`` dials it again);
- ``machine`` + ``message``: the flow gets no more events (the step running runs out; nothing
  after it starts), robocall waits for the end of the greeting (the beep, or its trailing
  silence), plays the message once and hangs up; the call ends ``completed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gevent

from robocall.amd.classifier import AnsweredBy, Finding, GreetingEnd, Verdict
from robocall.amd.detection import CallDetection
from robocall.errors import RobocallError, SwitchError
from robocall.esl import commands
from robocall.esl.protocol import Event
from robocall.flow.actions import CallFinished, FinishReason
from robocall.flow.model import DetectionMode, MachineDetection
from robocall.flow.status import CallStatus

if TYPE_CHECKING:
    from robocall.calls.runner import _ActiveCall

log = logging.getLogger(__name__)

MACHINE_DETECTED = "MACHINE_DETECTED"  # robocall's hangup cause for a machine it hung up on


@dataclass(frozen=True)
class AmdFinding:
    """A detection finding, put on the call's event queue."""

    finding: Finding


class MachineHandling:
    """One call's answering-machine detection and what its verdict does."""

    def __init__(self, call: _ActiveCall, settings: MachineDetection) -> None:
        self.call = call
        self.settings = settings
        runner, ticket = call.runner, call.ticket
        # Made before the dial: the originate carries its recording (start_command), which
        # the switch starts at the answer.
        self.detection = CallDetection(
            call.switch,  # the switch the call lives on (in a pool, its own)
            ticket.channel_uuid,
            f"{ticket.call_id}-{ticket.channel_uuid}",
            lambda finding: call.queue.put_nowait(AmdFinding(finding)),
            runner.settings.detection,
        )
        self.started = False
        self.verdict: Verdict | None = None
        self.hung_up_on_machine = False
        self.flow_stopped = False  # mode message took the call over from the flow
        self.message_event_uuid: str | None = None
        self.message_done = False
        self._audio: gevent.Greenlet | None = None

    def start(self) -> None:
        """The call was answered: the switch is recording; follow it."""
        call = self.call
        runner = call.runner
        ticket = call.ticket
        self.started = True
        self.detection.start()
        message = self.settings.message
        if self.settings.mode is DetectionMode.MESSAGE and message is not None:
            # rendered now, while the greeting plays: ready long before the beep
            self._audio = gevent.spawn(runner.prompts.audio, message, ticket.properties)

    def stop(self) -> None:
        self.detection.stop()
        if self._audio is not None:
            self._audio.kill(block=False)

    def call_over(self, after_ms: int) -> None:
        """The call ended before a verdict: every answered call of the request reports one."""
        if self.verdict is None and self.started:
            self._on_verdict(Verdict(AnsweredBy.UNKNOWN, after_ms, "call ended first"))

    def on_finding(self, finding: Finding) -> None:
        if isinstance(finding, Verdict):
            self._on_verdict(finding)
        elif isinstance(finding, GreetingEnd) and self.flow_stopped:
            self._leave_message(finding)

    def _on_verdict(self, verdict: Verdict) -> None:
        if self.verdict is not None:
            return
        self.verdict = verdict
        call = self.call
        log.info("call %s: %s at %d ms of audio (%s)", call.ticket.call_id,
                 verdict.answered_by.value, verdict.at_ms, verdict.reason)
        answered_by = verdict.answered_by.value
        call.runner.log_store.call_answered_by(call.ticket.call_id, answered_by, verdict.at_ms)
        call.runner.observers.call_answered_by(call.ticket, answered_by, verdict.at_ms)
        mode = self.settings.mode
        if verdict.answered_by is not AnsweredBy.MACHINE or mode is DetectionMode.CONTINUE:
            self.stop()
            return
        if call.machine.finished or call.hangup_cause_final:
            return  # the flow or the call ended meanwhile: nothing left to stop
        if mode is DetectionMode.HANGUP:
            self.hung_up_on_machine = True
            self.stop()
            call._hangup("NORMAL_CLEARING")
            return
        # mode message: the flow is over; what it plays now is cut (uuid_break: a playback
        # ends, a gather's prompt stops) and the message waits for the greeting's end
        self.flow_stopped = True
        if call.pending is not None:
            try:
                call.switch.api(commands.uuid_break_all(call.ticket.channel_uuid))
            except SwitchError as err:
                log.info("call %s: uuid_break: %s", call.ticket.call_id, err)

    def _leave_message(self, end: GreetingEnd) -> None:
        if self.message_event_uuid is not None or self._audio is None:
            return
        call = self.call
        try:
            audio = str(self._audio.get(timeout=30))
        except (RobocallError, gevent.Timeout) as err:
            log.error("call %s: the machine's message cannot play: %s", call.ticket.call_id, err)
            call._hangup("NORMAL_CLEARING")
            return
        self.message_event_uuid = call.runner.new_uuid()
        log.info("call %s: greeting over at %d ms (%s); leaving the message",
                 call.ticket.call_id, end.at_ms, end.by)
        try:
            call.switch.execute(
                call.ticket.channel_uuid, "playback", audio, self.message_event_uuid
            )
        except SwitchError as err:
            log.warning("call %s: message playback failed: %s", call.ticket.call_id, err)
            call._hangup("NORMAL_CLEARING")

    def on_execute_complete(self, event: Event) -> bool:
        """True when the completion is the machine message's (it is then handled here)."""
        if self.message_event_uuid is None or event.application_uuid != self.message_event_uuid:
            return False
        self.message_done = True
        self.call._hangup("NORMAL_CLEARING")
        return True

    def outcome(self) -> CallFinished | None:
        """The call's end when detection decided it, else None (the flow's own outcome)."""
        if self.hung_up_on_machine:
            return CallFinished(CallStatus.FAILED, FinishReason.CALLEE_HANGUP, MACHINE_DETECTED)
        if self.flow_stopped:
            return CallFinished(CallStatus.COMPLETED, FinishReason.FLOW_DONE, "NORMAL_CLEARING")
        return None

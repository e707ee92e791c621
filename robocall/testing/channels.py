"""One fake FreeSWITCH channel: its state, variables and life (create -> answer -> park -> hangup).

A channel emits its own events through the switch. Hanging up is split the way FreeSWITCH
splits it, so the owner can put other events between the steps as the recordings show:
``hangup()`` (CHANNEL_HANGUP, wakes every wait), ``report()`` (CHANNEL_HANGUP_COMPLETE, the
channel leaves ``show channels``) and ``destroy()`` (CHANNEL_DESTROY).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gevent.event import Event as Flag
from gevent.queue import Queue

from robocall.testing.callees import Callee

if TYPE_CHECKING:
    from robocall.testing.switch import Switch
    from robocall.testing.voice import ReadLegRecording

Q850 = {
    "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_ANSWER": 19, "NO_USER_RESPONSE": 18,
    "CALL_REJECTED": 21, "UNALLOCATED_NUMBER": 1, "NORMAL_TEMPORARY_FAILURE": 41,
    "ORIGINATOR_CANCEL": 16, "SYSTEM_SHUTDOWN": 41, "DESTINATION_OUT_OF_ORDER": 27,
    "MANAGER_REQUEST": 16,
}
_SIP_STATUS = {"USER_BUSY": 486, "CALL_REJECTED": 603, "UNALLOCATED_NUMBER": 404,
               "NORMAL_TEMPORARY_FAILURE": 503}


@dataclass
class Profile:
    """The caller profile behind the ``Caller-*`` headers."""

    caller_id_number: str
    destination: str
    caller_id_name: str = ""
    logical_direction: str = "outbound"
    cid_flipped: bool = False
    callee_id_name: str = ""


@dataclass
class Times:
    """Channel timestamps in microseconds (0 = not yet), as in ``Caller-Channel-*-Time``."""

    created: int
    answered: int = 0
    progress: int = 0
    hangup: int = 0
    bridged: int = 0


@dataclass
class Message:
    """A sendmsg ``execute`` queued on a channel."""

    app: str
    argument: str
    event_uuid: str
    early: bool = False  # arrived before the leg was in park(): FreeSWITCH aborts it


@dataclass
class Recording:
    """A running record_session."""

    path: str
    started: float  # switch monotonic seconds


class Channel:
    """A leg of a call inside the fake switch."""

    def __init__(self, switch: Switch, uuid: str, name: str, number: str,
                 variables: dict[str, str], callee: Callee, kind: str = "robo") -> None:
        self.switch = switch
        self.uuid = uuid
        self.call_uuid = uuid
        self.name = name
        self.number = number
        self.callee = callee
        self.kind = kind  # robo | bleg | external
        self.profile = Profile(
            caller_id_number=variables.get("origination_caller_id_number", "0000000000"),
            destination=number,
            caller_id_name="Outbound Call" if kind == "bleg" else "",
        )
        self.times = Times(created=switch.factory.micros())
        self.state, self.state_number = "CS_INIT", 2
        self.call_state, self.answer_state = "DOWN", "ringing"
        self.hit_dialplan = False
        self.media_up = False
        self.network_addr = kind == "bleg"
        self.other: Channel | None = None
        self.other_type: str | None = None
        self.other_callee_name = False  # the other leg had a callee name when this one began
        self.hangup_cause: str | None = None
        self.disposition = ""
        self.application = ""
        self.application_data = ""
        self.accountcode_column = ""
        self.parked = False
        self.park_uuid = ""
        self.collecting = False
        self.prompts_heard = 0  # play_and_get_digits tries begun (a callee may press on them)
        self.queued_messages = 0  # sendmsg executes received, and of those, started
        self.started_messages = 0
        self.recording: Recording | None = None
        self.read_recordings: dict[str, ReadLegRecording] = {}  # uuid_record ... by path
        self.breaking = Flag()  # uuid_break: the playback playing now stops
        self.bridged_to: Channel | None = None
        self.inbox: Queue[Message | None] = Queue()
        self.dtmf: Queue[str | None] = Queue()
        self.ended = Flag()
        self.reported = Flag()
        self.answered_flag = Flag()
        self.created_mono = switch.monotonic()
        self.answered_mono: float | None = None
        self.variables: dict[str, str] = {}
        self._initial_variables(variables)

    # --- variables ----------------------------------------------------------------------------

    def _initial_variables(self, originate_vars: dict[str, str]) -> None:
        v = self.variables
        v.update({"direction": "outbound", "is_outbound": "true", "uuid": self.uuid,
                  "call_uuid": self.call_uuid, "session_id": str(self.switch.session_count),
                  "sip_profile_name": "internal", "video_media_flow": "disabled",
                  "text_media_flow": "disabled", "channel_name": self.name,
                  "sip_destination_url": f"sip:{self.number}@127.0.0.1"})
        v.update(originate_vars)
        v.update({"originate_early_media": "false", "originate_endpoint": "sofia",
                  "audio_media_flow": "sendrecv", "sip_req_uri": f"{self.number}@127.0.0.1",
                  "sofia_profile_name": "internal", "recovery_profile_name": "internal"})

    def set_variable(self, name: str, value: str | None) -> None:
        """Set (or with None, unset) a channel variable; it shows in later events."""
        if value is None:
            self.variables.pop(name, None)
        else:
            self.variables[name] = value

    @property
    def up(self) -> bool:
        """True until the channel starts hanging up."""
        return not self.ended.is_set()

    # --- events -------------------------------------------------------------------------------

    def emit(self, name: str, extra: Iterable[tuple[str, str]] = (),
             before_state: Iterable[tuple[str, str]] = ()) -> None:
        """Raise one event about this channel on every listener subscribed to it."""
        self.switch.publish(self.switch.factory.channel_event(name, self, extra, before_state))

    def create(self) -> None:
        """CHANNEL_CREATE; the leg then routes (CS_CONSUME_MEDIA) while it rings."""
        self.emit("CHANNEL_CREATE")
        self.state, self.state_number = "CS_CONSUME_MEDIA", 7

    def progress(self) -> None:
        """The callee rings (SIP 180): CHANNEL_PROGRESS."""
        self.network_addr = True
        self.times.progress = self.switch.factory.micros()
        self.emit("CHANNEL_PROGRESS")
        self.call_state = "RINGING"  # the event still says DOWN; later ones say RINGING

    def answer(self) -> None:
        """The callee answered: CHANNEL_ANSWER, media up."""
        self.network_addr = True
        self.media_up = True
        self.answer_state, self.call_state = "answered", "RINGING"
        self.times.answered = self.switch.factory.micros()
        if not self.times.progress:
            self.times.progress = self.times.answered
        self.answered_mono = self.switch.monotonic()
        self.variables.update({
            "sip_to_user": self.number, "sip_from_user": self.profile.caller_id_number,
            "read_codec": "PCMU", "read_rate": "8000", "write_codec": "PCMU", "write_rate": "8000",
            "dtmf_type": "rfc2833", "remote_media_ip": "127.0.0.1",
        })
        self.emit("CHANNEL_ANSWER")
        self.variables["endpoint_disposition"] = "ANSWER"
        self.run_api_on("api_on_answer")
        self.answered_flag.set()

    def run_api_on(self, prefix: str) -> None:
        """Run the api command of every variable named ``prefix...`` (``api_on_answer``), in
        the answer itself, as FreeSWITCH 1.11.1's ``switch_channel_api_on`` does: the text up
        to the first space is the command, the rest its argument with ``${var}`` expanded."""
        from robocall.testing.api import run_api

        for name, value in list(self.variables.items()):
            if not name.lower().startswith(prefix):
                continue
            command, _, argument = value.partition(" ")
            argument = _EXPAND.sub(lambda m: self.variables.get(m[1], ""), argument)
            run_api(self.switch, command, argument)

    def start_executing(self) -> None:
        """The originate finished: the leg runs its first application (CS_EXECUTE, ACTIVE)."""
        self.state, self.state_number = "CS_EXECUTE", 4
        self.call_state = "ACTIVE"
        self.hit_dialplan = True
        self.profile.cid_flipped = self.kind == "robo"
        self.accountcode_column = self.variables.get("accountcode", "")
        if self.kind == "robo":
            self.variables.update({
                "pre_transfer_caller_id_number": self.profile.caller_id_number,
                "channel_cid_flipped": "true"})

    def receive_dtmf(self, digit: str) -> None:
        """An RFC 2833 digit from the callee: DTMF event; kept only if an app collects digits."""
        if not self.up or self.answer_state != "answered":
            return
        self.emit("DTMF", [("DTMF-Digit", digit), ("DTMF-Duration", "2000"),
                           ("DTMF-Source", "RTP")])
        # park() and playback dequeue and drop digits; only play_and_get_digits keeps them.
        if self.collecting:
            self.dtmf.put(digit)

    def wait(self, ms: float) -> bool:
        """Sleep ``ms`` scripted milliseconds; False as soon as the channel hangs up."""
        return not self.ended.wait(self.switch.seconds(ms))

    # --- hangup -------------------------------------------------------------------------------

    def hangup(self, cause: str, disposition: str = "send_bye") -> bool:
        """CHANNEL_HANGUP and wake every wait on this channel; False if it was already ending."""
        if self.ended.is_set():
            return False
        self.hangup_cause = cause
        self.disposition = disposition
        self.answer_state = "hangup"
        self.state_number = 10
        self.times.hangup = self.switch.factory.micros()
        if disposition == "recv_refuse":
            # A refusal is known before the hangup event (as recorded for busy callees).
            self.set_variable("sip_hangup_disposition", disposition)
            if cause in _SIP_STATUS:
                self.set_variable("proto_specific_hangup_cause", f"sip:{_SIP_STATUS[cause]}")
        if disposition == "recv_bye":
            self.set_variable("proto_specific_hangup_cause", "sip:200")
        self.emit("CHANNEL_HANGUP")
        if disposition == "recv_bye":
            # Not yet in CHANNEL_HANGUP, in every later event (esl-callee-hangup-*.txt).
            self.set_variable("sip_hangup_disposition", disposition)
        self.ended.set()
        self.inbox.put(None)
        self.dtmf.put(None)
        return True

    def stop_recording(self) -> None:
        """RECORD_STOP after hangup, with the WAV file written at the call's real length."""
        recording = self.recording
        if recording is None:
            return
        self.recording = None
        from robocall.testing.media import write_silence_wav

        length_ms = int(self.switch.scripted_ms(self.switch.monotonic() - recording.started))
        samples = write_silence_wav(recording.path, length_ms)
        self.state = "CS_HANGUP"
        self.variables.update({"record_seconds": str(length_ms // 1000),
                               "record_ms": str(length_ms), "record_samples": str(samples),
                               "record_completion_cause": "success-silence",
                               "record_file_size": str(44 + samples * 2)})
        self.emit("RECORD_STOP", [("Record-File-Path", recording.path),
                                  ("Record-Completion-Cause", "success-silence")])

    def report(self) -> None:
        """CHANNEL_HANGUP_COMPLETE with the billing variables; the leg leaves show channels."""
        if self.reported.is_set():
            return
        self.stop_recording()
        self._hangup_variables()
        self.state, self.state_number, self.call_state = "CS_REPORTING", 11, "HANGUP"
        self.emit("CHANNEL_HANGUP_COMPLETE")
        self.reported.set()
        self.switch.unregister(self)

    def destroy(self) -> None:
        """CHANNEL_DESTROY, the last event of a channel."""
        self.state_number = 12
        self.emit("CHANNEL_DESTROY")

    def finish(self) -> None:
        """report() then destroy(): the tail every hangup ends with."""
        self.report()
        self.destroy()

    def _hangup_variables(self) -> None:
        """The CDR block FreeSWITCH adds at CS_REPORTING, in its order."""
        cause = self.hangup_cause or "NORMAL_CLEARING"
        now = self.switch.monotonic()
        t = self.times
        total_us = int(self.switch.scripted_ms(now - self.created_mono) * 1000)
        answered = self.answered_mono
        bill_us = int(self.switch.scripted_ms(now - answered) * 1000) if answered else 0
        progress_us = max(t.progress - t.created, 0) if t.progress else 0
        answer_us = max(t.answered - t.created, 0) if t.answered else 0
        v = self.variables
        v.update({"hangup_cause": cause, "hangup_cause_q850": str(Q850.get(cause, 41)),
                  "digits_dialed": "none"})
        for name, micros in (("start", t.created), ("profile_start", t.created),
                             ("answer", t.answered), ("bridge", t.bridged),
                             ("progress", t.progress), ("end", t.hangup)):
            if micros:
                v[f"{name}_stamp"] = _stamp(micros // 1_000_000)
        for name, micros in (("start", t.created), ("profile_start", t.created),
                             ("answer", t.answered), ("bridge", t.bridged), ("last_hold", 0),
                             ("resurrect", 0), ("progress", t.progress),
                             ("progress_media", 0), ("end", t.hangup)):
            v[f"{name}_epoch"] = str(micros // 1_000_000)
            v[f"{name}_uepoch"] = str(micros)
        v.update({"hold_accum_seconds": "0", "hold_accum_usec": "0", "hold_accum_ms": "0"})
        if self.application:
            v["last_app"] = self.application
        if self.application_data:
            v["last_arg"] = self.application_data
        v["caller_id"] = f'"Outbound Call" <{self.profile.caller_id_number}>'
        for unit, scale in (("sec", 1_000_000), ("msec", 1000), ("usec", 1)):
            prefix = {"sec": "", "msec": "m", "usec": "u"}[unit]
            v.update({
                f"{prefix}duration" if unit != "sec" else "duration": str(total_us // scale),
                f"bill{unit}": str(bill_us // scale), f"progress{unit}": str(progress_us // scale),
                f"answer{unit}": str(answer_us // scale), f"wait{unit}": str(answer_us // scale),
                f"progress_media{unit}": "0", f"flow_bill{unit}": str(total_us // scale)})
        if self.disposition:
            v["sip_hangup_disposition"] = self.disposition
        if self.disposition == "recv_bye":
            v["sip_term_status"] = "200"
        elif cause in _SIP_STATUS and self.disposition == "recv_refuse":
            v["sip_term_status"] = str(_SIP_STATUS[cause])
            v["proto_specific_hangup_cause"] = f"sip:{_SIP_STATUS[cause]}"

    # --- the callee's side --------------------------------------------------------------------

    def run_callee_script(self) -> None:
        """After answer: press the scripted digits and hang up when the script says so."""
        events: list[tuple[int, str | None]] = [(ms, d) for ms, d in self.callee.dtmf_schedule()]
        if self.callee.hangup_after_ms is not None:
            events.append((self.callee.hangup_after_ms, None))
        events.sort(key=lambda item: (item[0], item[1] is None))
        elapsed = 0
        for at_ms, digit in events:
            if not self.wait(at_ms - elapsed):
                return
            elapsed = at_ms
            if digit is None:
                self.hangup("NORMAL_CLEARING", "recv_bye")
                return
            self.receive_dtmf(digit)

    def prompt_started(self) -> None:
        """A play_and_get_digits try began: press what the callee presses on hearing it."""
        self.prompts_heard += 1
        schedule = self.callee.prompt_schedule(self.prompts_heard)
        if schedule:
            self.switch.spawn(self._press_on_prompt, schedule)

    def _press_on_prompt(self, schedule: list[tuple[int, str]]) -> None:
        elapsed = 0
        for at_ms, digit in schedule:
            if not self.wait(at_ms - elapsed):
                return
            elapsed = at_ms
            self.receive_dtmf(digit)

    def spawn_callee_script(self) -> None:
        """Run the callee's script beside the call."""
        if self.callee.presses or self.callee.hangup_after_ms is not None:
            self.switch.spawn(self.run_callee_script)


_EXPAND = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")

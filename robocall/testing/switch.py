"""The fake switch's core: live channels, the event bus, originate, budgets, external calls.

No sockets here: listeners (ESL connections) register with ``Switch.listeners`` and receive
every event through ``deliver``. Scripted milliseconds become real seconds through
``time_scale`` (0.01 runs a scripted minute in 0.6 s).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import gevent
from gevent.pool import Group

from robocall.testing.apps import FRAME_MS, run_session
from robocall.testing.callees import Callee, CalleeBook, parse_originate
from robocall.testing.channels import Channel
from robocall.testing.events import Event, EventFactory


class Listener(Protocol):
    def deliver(self, event: Event) -> None: ...


THROTTLE_CAUSE = "DESTINATION_OUT_OF_ORDER"
# The modules of the lab FreeSWITCH 1.11.1 (/work/fslab): what ``module_exists`` says true for.
LOADED_MODULES = frozenset({
    "mod_console", "mod_logfile", "mod_event_socket", "mod_sofia", "mod_loopback",
    "mod_commands", "mod_db", "mod_dptools", "mod_expr", "mod_hash", "mod_esf",
    "mod_http_cache", "mod_spandsp", "mod_dialplan_xml", "mod_sndfile", "mod_native_file",
    "mod_local_stream", "mod_tone_stream", "mod_flite", "mod_say_en",
})


class Switch:
    """Channels and events of one fake FreeSWITCH."""

    def __init__(self, callees: CalleeBook, time_scale: float = 1.0,
                 sessions_per_second: int = 30, max_sessions: int = 1000,
                 clock: Callable[[], float] = time.time) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.callees = callees
        self.time_scale = time_scale
        self.sessions_per_second = sessions_per_second
        self.max_sessions = max_sessions
        self.factory = EventFactory(clock)
        self.channels: dict[str, Channel] = {}
        self.listeners: list[Listener] = []
        self.session_count = 0
        self.peak_sessions = 0
        self.throttled = 0
        self.admitted: list[float] = []  # when each new session was admitted (monotonic)
        self.dialled: dict[str, int] = {}  # number -> robo legs created for it (at most once?)
        self.started = time.monotonic()
        self._recent_sessions: deque[float] = deque()
        self.greenlets = Group()
        # What ``module_exists`` answers true for: the lab FreeSWITCH's modules (tests may edit).
        self.modules: set[str] = set(LOADED_MODULES)
        # (channel uuid, scripted ms after its answer, file) of every PLAYBACK_START, kept after
        # the channel is gone: when the callee began to hear each file
        self.playbacks: list[tuple[str, float, str]] = []

    # --- time -----------------------------------------------------------------------------

    @staticmethod
    def monotonic() -> float:
        """Real monotonic seconds."""
        return time.monotonic()

    def seconds(self, ms: float) -> float:
        """Real seconds for a scripted duration in ms."""
        return max(ms, 0) / 1000 * self.time_scale

    def scripted_ms(self, seconds: float) -> float:
        """Scripted ms for a real duration in seconds."""
        return seconds * 1000 / self.time_scale

    def spawn(self, function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """Run beside the caller; the switch kills these greenlets when it stops."""
        return self.greenlets.spawn(function, *args)

    # --- events and channels --------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Hand one event to every listener (each filters by its own subscription)."""
        for listener in list(self.listeners):
            listener.deliver(event)

    def admit(self) -> str | None:
        """Spend one session of the budget; the failure cause when over it (Throttle Error)."""
        now = self.monotonic()
        window = self.seconds(1000)
        while self._recent_sessions and now - self._recent_sessions[0] >= window:
            self._recent_sessions.popleft()
        if len(self.channels) >= self.max_sessions or \
                len(self._recent_sessions) >= self.sessions_per_second:
            self.throttled += 1
            return THROTTLE_CAUSE
        self._recent_sessions.append(now)
        self.admitted.append(now)
        return None

    def most_sessions_in_a_second(self) -> int:
        """The most sessions admitted in any one (scripted) second, wherever it starts: what a
        pacer must keep at or under ``sessions_per_second``."""
        window = self.seconds(1000)
        times, most, first = self.admitted, 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= window:
                first += 1
            most = max(most, last - first + 1)
        return most

    def new_channel(self, channel_uuid: str, name: str, number: str,
                    variables: dict[str, str], callee: Callee, kind: str) -> Channel:
        """Create and register a channel (it appears in show channels at once)."""
        self.session_count += 1
        if kind == "robo":
            self.dialled[number] = self.dialled.get(number, 0) + 1
        channel = Channel(self, channel_uuid, name, number, variables, callee, kind)
        self.channels[channel_uuid] = channel
        self.peak_sessions = max(self.peak_sessions, len(self.channels))
        return channel

    def unregister(self, channel: Channel) -> None:
        """The channel left the switch's channel table."""
        self.channels.pop(channel.uuid, None)

    def find(self, channel_uuid: str) -> Channel | None:
        """A live channel by uuid."""
        return self.channels.get(channel_uuid)

    def kill(self, channel: Channel, cause: str = "NORMAL_CLEARING") -> None:
        """Hang a channel up from the switch side (uuid_kill, hupall, shutdown)."""
        ringing = channel.answer_state == "ringing"
        if channel.hangup(cause, "send_cancel" if ringing else "send_bye") and \
                channel.kind == "external":
            channel.finish()

    # --- originate ------------------------------------------------------------------------

    def originate(self, argument: str, report: Callable[[str], None]) -> None:
        """Run ``originate <dial> &park()``; ``report`` gets the api result when it is known.

        The leg's life continues in this greenlet after the report (park, apps, hangup).
        """
        try:
            args = parse_originate(argument)
        except ValueError:
            report("-ERR INVALID_GATEWAY\n")
            return
        if not args.destination:
            report("-USAGE: <call url> <exten>|&<application_name>(<app_args>) "
                   "[<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n")
            return
        refused = self.admit()
        if refused:
            report(f"-ERR {refused}\n")
            return
        variables = args.dial.variables
        channel_uuid = variables.get("origination_uuid") or str(uuid.uuid4())
        number = args.dial.number
        channel = self.new_channel(channel_uuid, args.dial.channel_name, number, variables,
                                   self.callees.lookup(number, args.dial.endpoint), kind="robo")
        self._dial(channel, _seconds(variables.get("originate_timeout")) * 1000, report)

    def _dial(self, channel: Channel, timeout_ms: int, report: Callable[[str], None]) -> None:
        callee = channel.callee
        channel.create()
        if not channel.wait(FRAME_MS):
            return self._fail(channel, report)
        if callee.refusal:
            # A SIP error response came from the callee's address; a network failure has none.
            channel.network_addr = callee.outcome != "network_failure"
            channel.hangup(callee.refusal[0], "recv_refuse")
            return self._fail(channel, report)
        if callee.ring:
            channel.progress()
        answers = callee.outcome == "answer" and callee.answer_after_ms < timeout_ms
        if not channel.wait(callee.answer_after_ms if answers else timeout_ms):
            return self._fail(channel, report)
        if not answers:
            # No answer: the job's -ERR comes before HANGUP_COMPLETE (esl-transcript-originate-
            # failures.txt); busy and refusals report after it.
            channel.hangup("NO_ANSWER", "send_cancel")
            report("-ERR NO_ANSWER\n")
            channel.finish()
            return None
        channel.answer()
        channel.spawn_callee_script()
        channel.wait(FRAME_MS)
        report(f"+OK {channel.uuid}\n")
        run_session(channel)
        return None

    @staticmethod
    def _fail(channel: Channel, report: Callable[[str], None]) -> None:
        channel.report()
        report(f"-ERR {channel.hangup_cause}\n")
        channel.destroy()

    # --- calls of other apps (not robocall's) -------------------------------------------

    def start_external_call(self, variables: dict[str, str] | None = None,
                            number: str = "+6590000000") -> str:
        """An answered channel of someone else's call (another app on the same lines)."""
        channel_uuid = str(uuid.uuid4())
        channel = self.new_channel(channel_uuid, f"sofia/internal/{number}@127.0.0.1".replace(
            "+", "%2B"), number, dict(variables or {}), Callee(), kind="external")
        channel.create()
        channel.answer()
        channel.start_executing()
        return channel_uuid

    def end_external_call(self, channel_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """The external call's far end hangs up."""
        channel = self.channels.get(channel_uuid)
        if channel is not None and channel.hangup(cause, "recv_bye"):
            channel.finish()

    def hang_up_everything(self, cause: str) -> None:
        """Hang every channel up and wait (bounded) until each has reported."""
        channels = list(self.channels.values())
        for channel in channels:
            self.kill(channel, cause)
        gevent.wait([c.reported for c in channels], timeout=5)


def _seconds(value: str | None, default: int = 60) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default

"""How many calls may be dialled now: free lines, and the calls-per-second budgets.

Pure: the clock is injected. FreeSWITCH refuses a session above its sessions-per-second budget
("Throttle Error") instead of queueing it. It counts sessions per leg (a transfer's too) and
refills the whole budget once a second on its own timer, whose phase robocall cannot see; so a
pace that is safe against every one of FreeSWITCH's windows must hold in ANY one-second window.
:class:`SendWindow` does: never more than ``rate`` sends fall in one second, counted at the
moment each command is sent, and sends leave on a schedule ``1/rate`` apart. A send that left
late (its greenlet woke late: on a machine whose switch threads run at real-time priority, a
few ms at every wake) lets the next ones catch up by at most ``CATCH_UP_SECONDS``: otherwise
every late wake would be lost for good and the pace would fall to 1 / (spacing + lateness).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

from robocall.dispatch.lines import LineUsage

WINDOW_SECONDS = 1.0
# How far behind its schedule a sender may catch up (sends then leave closer than 1/rate, as a
# short burst; the one-second count still holds). On the lab switch at 200 lines a greenlet
# sleeping 10 ms woke 15-25 ms late at p90 (55-95 ms at p99): at 90/s the spacing is 11 ms.
CATCH_UP_SECONDS = 0.05
# FreeSWITCH counts a session when its bgapi thread creates it, a little after robocall sent
# the command; jitter in that delay can move a send into the next of its windows. Staying 10 %
# under its budget absorbs ~100 ms of jitter even at a steady full pace.
SWITCH_HEADROOM = 0.9
# What FreeSWITCH ships with (switch.conf.xml): used until the switch has told its own.
FREESWITCH_DEFAULT_SPS = 30
FREESWITCH_DEFAULT_MAX_SESSIONS = 1000

_SPS = re.compile(r"session\(s\) per Sec out of max (\d+)")
_MAX_SESSIONS = re.compile(r"^(\d+) session\(s\) max", re.MULTILINE)
_LIVE_SESSIONS = re.compile(r"^(\d+) session\(s\) - peak", re.MULTILINE)
_UPTIME = re.compile(
    r"UP (\d+) years?, (\d+) days?, (\d+) hours?, (\d+) minutes?, (\d+) seconds?")


def free_lines(capacity: int, usage: LineUsage, dials_in_flight: int) -> int:
    """Lines no one uses and no dial of ours is about to take (never negative).

    A dial in flight was claimed or sent but its channel has not been seen yet; once seen, the
    channel is in ``usage`` and the dial is no longer in flight, so nothing is counted twice.
    """
    return max(0, capacity - usage.total - dials_in_flight)


@dataclass(frozen=True)
class SwitchLimits:
    """The switch's own limits, as its ``status`` reports them."""

    sessions_per_second: int = FREESWITCH_DEFAULT_SPS
    max_sessions: int = FREESWITCH_DEFAULT_MAX_SESSIONS
    live_sessions: int = 0
    uptime_seconds: float | None = None  # since the switch started (None: not said)

    def legs_per_second(self, configured: float | None) -> float:
        """The pace robocall keeps: under the switch's budget, lowered by ``configured``."""
        own = max(1.0, math.floor(self.sessions_per_second * SWITCH_HEADROOM))
        return own if not configured else min(own, configured)

    @property
    def sessions_cap(self) -> int:
        """Sessions robocall lets the switch reach (the rest is headroom for other callers)."""
        return max(1, math.floor(self.max_sessions * SWITCH_HEADROOM))


def parse_switch_status(text: str) -> SwitchLimits:
    """The limits in FreeSWITCH's ``status`` answer ("... per Sec out of max 30, ...",
    "1000 session(s) max"); ValueError when it does not say them."""
    sps, cap = _SPS.search(text), _MAX_SESSIONS.search(text)
    if sps is None or cap is None:
        raise ValueError(f"status names no session limits: {text[:120]!r}")
    live = _LIVE_SESSIONS.search(text)
    up = _UPTIME.search(text)
    uptime = None
    if up is not None:
        years, days, hours, minutes, seconds = (int(part) for part in up.groups())
        uptime = float((((years * 365 + days) * 24 + hours) * 60 + minutes) * 60 + seconds)
    return SwitchLimits(
        sessions_per_second=int(sps.group(1)),
        max_sessions=int(cap.group(1)),
        live_sessions=int(live.group(1)) if live else 0,
        uptime_seconds=uptime,
    )


class SendWindow:
    """At most ``rate`` sends in any window of one second, on a schedule ``1/rate`` apart.

    The next send is due one spacing after the last, less the last one's lateness, up to
    ``CATCH_UP_SECONDS``: after late sends the next ones may leave closer together until the
    pace is made up. Lateness is counted from when the send was allowed and its sender was
    already waiting (``record``'s ``waiting_since``), so a sender that comes after an idle
    stretch gets no burst. The window count is the guarantee that stays true whatever the
    schedule allows (or a late clock computed).
    """

    def __init__(self, rate: float) -> None:
        self._sent: deque[float] = deque()
        self._paused_until = -math.inf
        self._last = -math.inf  # the last send
        self._credit = 0.0  # how late it left, up to CATCH_UP_SECONDS
        self.rate = 1.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        """Change the pace at once; the sends already made still count."""
        if rate <= 0:
            raise ValueError("a send window needs a positive rate")
        self.rate = rate
        self.limit = max(1, math.floor(rate))  # sends per window
        self.spacing = 1.0 / rate

    def _due(self) -> float:
        return self._last + self.spacing - self._credit

    def _forget(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= WINDOW_SECONDS:
            self._sent.popleft()

    def _ready(self) -> float:
        ready = max(self._paused_until, self._due())
        if len(self._sent) >= self.limit:
            ready = max(ready, self._sent[-self.limit] + WINDOW_SECONDS)
        return ready

    def wait_seconds(self, now: float) -> float:
        """How long until one more send may leave (0: now)."""
        self._forget(now)
        return max(0.0, self._ready() - now)

    def record(self, now: float, waiting_since: float | None = None) -> None:
        """A send left at ``now`` (the caller waited :meth:`wait_seconds` first). Its sender
        had waited for it since ``waiting_since`` (None: it did not wait, so it left when it
        could and there is no lateness to make up)."""
        self._forget(now)
        allowed = max(self._ready(), now if waiting_since is None else waiting_since)
        self._credit = min(CATCH_UP_SECONDS, max(0.0, now - allowed))
        self._last = now
        self._sent.append(now)

    def pause(self, now: float, seconds: float) -> None:
        """Let nothing leave for ``seconds`` (the switch refused a send: its budget is spent)."""
        self._paused_until = max(self._paused_until, now + seconds)

    def paused(self, now: float) -> bool:
        """Whether a pause holds every send back now."""
        return now < self._paused_until

    def sent_in_window(self, now: float) -> int:
        """Sends in the last second."""
        self._forget(now)
        return len(self._sent)

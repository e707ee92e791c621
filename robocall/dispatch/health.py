"""How hard the switch is working, and how much slower robocall should dial because of it.

A FreeSWITCH on the same cores as everything else runs at real-time priority; pushed past what
it can carry it answers late, falls behind on events, refuses sessions ("Throttle Error") and
drops listeners. robocall degrades instead of collapsing: it dials slower while the switch says
it is busy, and never gives a live call up for it (the runner waits for late replies).

Three signals, each turned into a factor in ``[min_factor, 1]``; the smallest wins:

- the idle CPU of the switch's machine, from its HEARTBEAT events (``Idle-CPU``; FreeSWITCH
  sends one every ``event-heartbeat-interval`` seconds, 20 by default — 1 to 5 reacts faster);
- its sessions against its limit (``Session-Count`` / ``Max-Sessions`` in the same events);
- how long its command replies take (fed by the Event Socket client: ``observe_reply``). With
  replies on a connection of their own, a late reply means the switch itself is late.

The factor falls at once and recovers gradually (``recover_per_second``), so a busy switch is not
hit by a full-rate burst the moment one heartbeat looks better. Pure: the clock is injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthLimits:
    """Where each signal starts to slow dialling (``easy``) and where it is at its slowest."""

    # Percent idle. FreeSWITCH reports the whole machine's idle CPU, so on cores it shares a
    # busy neighbour also counts: only a machine with (nearly) nothing left slows dialling.
    idle_cpu_easy: float = 10.0  # at or above: the CPU is no concern
    idle_cpu_worst: float = 0.0
    sessions_easy: float = 0.80  # share of Max-Sessions
    sessions_worst: float = 0.95
    reply_easy: float = 0.25  # seconds of command reply latency
    reply_worst: float = 2.5
    min_factor: float = 0.25  # never stop dialling outright: a stale signal must not starve
    recover_per_second: float = 0.2
    heartbeat_max_age: float = 60.0  # an older heartbeat says nothing about now
    reply_half_life: float = 5.0  # without new replies, an old latency fades


class SwitchHealth:
    """Reads the switch's load; :meth:`rate_factor` scales the dial rate (1.0: full speed)."""

    def __init__(
        self,
        limits: HealthLimits = HealthLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._idle_cpu: float | None = None
        self._session_share: float | None = None
        self._sessions: int | None = None
        self._heartbeat_at = 0.0
        self._reply_seconds = 0.0  # exponentially weighted mean
        self._reply_at = 0.0
        self._factor = 1.0
        self._factor_at = clock()

    # --- signals ----------------------------------------------------------------------------

    def observe(self, event: object) -> None:
        """An Event Socket listener: reads HEARTBEAT events, ignores the rest."""
        headers: Mapping[str, str] = getattr(event, "headers", {})
        if headers.get("Event-Name") != "HEARTBEAT":
            return
        self.heartbeat(headers)

    def heartbeat(self, headers: Mapping[str, str]) -> None:
        """One HEARTBEAT's headers: ``Idle-CPU``, ``Session-Count``, ``Max-Sessions``."""
        idle = _number(headers.get("Idle-CPU"))
        sessions = _number(headers.get("Session-Count"))
        limit = _number(headers.get("Max-Sessions"))
        self._idle_cpu = idle
        self._session_share = sessions / limit if sessions is not None and limit else None
        self._sessions = int(sessions) if sessions is not None else None
        self._heartbeat_at = self._clock()

    def observe_reply(self, seconds: float) -> None:
        """How long one command waited for its reply."""
        now = self._clock()
        current = self._faded_reply(now)
        self._reply_seconds = seconds if current == 0.0 else 0.8 * current + 0.2 * seconds
        self._reply_at = now

    @property
    def idle_cpu(self) -> float | None:
        """The switch machine's idle CPU from a recent HEARTBEAT (None: none recent)."""
        if self._clock() - self._heartbeat_at > self.limits.heartbeat_max_age:
            return None
        return self._idle_cpu

    @property
    def sessions(self) -> int | None:
        """The switch's live sessions (any owner) from a recent HEARTBEAT (None: none recent)."""
        if self._clock() - self._heartbeat_at > self.limits.heartbeat_max_age:
            return None
        return self._sessions

    # --- the verdict ------------------------------------------------------------------------

    def rate_factor(self) -> float:
        """The share of the configured dial rate to use now, in ``[min_factor, 1]``."""
        now = self._clock()
        target = self._target(now)
        previous = self._factor
        if target < previous:
            factor = target
        else:
            recovered = previous + (now - self._factor_at) * self.limits.recover_per_second
            factor = min(target, recovered)
        self._factor, self._factor_at = factor, now
        if (factor < 1.0) != (previous < 1.0) or abs(factor - previous) >= 0.25:
            log.warning("switch load: dialling at %d%% of the configured rate (%s)",
                        round(factor * 100), self.describe())
        return factor

    def describe(self) -> str:
        """The signals as a person reads them (for the log and the doctor)."""
        idle = "?" if self._idle_cpu is None else f"{self._idle_cpu:.0f}%"
        share = "?" if self._session_share is None else f"{self._session_share:.0%}"
        return (f"idle CPU {idle}, sessions {share} of the limit, "
                f"replies {self._faded_reply(self._clock()) * 1000:.0f} ms")

    def _target(self, now: float) -> float:
        limits = self.limits
        factors = [_falling(self._faded_reply(now), limits.reply_easy, limits.reply_worst)]
        if now - self._heartbeat_at <= limits.heartbeat_max_age:
            if self._idle_cpu is not None:
                # Less idle is worse: mirror it so the same falling ramp applies.
                factors.append(_falling(-self._idle_cpu, -limits.idle_cpu_easy,
                                        -limits.idle_cpu_worst))
            if self._session_share is not None:
                factors.append(_falling(self._session_share, limits.sessions_easy,
                                        limits.sessions_worst))
        return max(limits.min_factor, min(factors))

    def _faded_reply(self, now: float) -> float:
        if self._reply_seconds == 0.0:
            return 0.0
        age = max(0.0, now - self._reply_at)
        return float(self._reply_seconds * 0.5 ** (age / self.limits.reply_half_life))


def _falling(value: float, easy: float, worst: float) -> float:
    """1 at or below ``easy``, 0 at or beyond ``worst``, a straight line between."""
    if value <= easy:
        return 1.0
    if value >= worst:
        return 0.0
    return (worst - value) / (worst - easy)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None

"""Whether the switch is falling behind, and how much slower robocall should dial because of it.

A FreeSWITCH pushed past what it can carry answers late, creates sessions late, falls behind on
its events, refuses sessions ("Throttle Error") and drops listeners. robocall degrades instead of
collapsing: it dials slower while the switch is late, and never gives a live call up for it (the
runner waits for late replies).

What says the switch is late — each a latency, smoothed, turned into a factor in
``[min_factor, 1]``; the smallest wins:

- **replies**: how long a command waits for its reply on the command connection (fed by the
  Event Socket client: ``observe_reply``). Commands have a connection of their own, so a late
  reply means a late switch (or a robocall too busy to read it), never a long event queue.
- **dials**: from an originate leaving (``dialled``, told by the send gate) to its channel's
  CHANNEL_CREATE read back: how long the switch takes to start a session robocall asked for.
- **event lag**: how far each event arrives behind the switch's own stamp
  (``Event-Date-Timestamp``), above the least lag seen in the last couple of minutes. The
  least lag is the clocks' offset (the switch may be another machine) plus the wire; anything
  above it is a queue, the switch's or robocall's reader's.
- **sessions**: ``Session-Count`` against ``Max-Sessions`` from HEARTBEAT events (the switch's
  own limit, not a latency).

The machine's idle CPU (``Idle-CPU`` in HEARTBEAT) is NOT a reason on its own: FreeSWITCH
reports the whole machine's, and a machine shared with other work reads 0-10 % idle while the
switch answers at once and plays on time (the lab measured robocall dialling at a quarter of
its pace for that alone, docs/load.md). It only corroborates: while the machine is short of CPU,
the latencies count double (each starts to slow dialling at half its usual threshold).

The factor falls at once to what the signals say and recovers gradually
(``recover_per_second``), so a late switch is not hit by a full-rate burst the moment one
sample looks better. Pure: the clock (monotonic) is injected.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthLimits:
    """Where each signal starts to slow dialling (``easy``) and where it is at its slowest."""

    reply_easy: float = 0.25  # seconds a command waits for its reply
    reply_worst: float = 2.5
    dial_easy: float = 0.5  # seconds from an originate sent to its CHANNEL_CREATE read
    dial_worst: float = 5.0
    event_lag_easy: float = 0.25  # seconds events arrive later than the least lag seen
    event_lag_worst: float = 2.5
    sessions_easy: float = 0.80  # share of Max-Sessions
    sessions_worst: float = 0.95
    # Percent idle of the switch's machine at or below which latencies count double
    # (``starved_scale`` times their thresholds). Never a reason to slow on its own.
    idle_cpu_starved: float = 10.0
    starved_scale: float = 0.5
    min_factor: float = 0.25  # never stop dialling outright: a stale signal must not starve
    recover_per_second: float = 0.2
    heartbeat_max_age: float = 60.0  # an older heartbeat says nothing about now
    latency_half_life: float = 5.0  # without new samples, an old latency fades
    dial_forget_seconds: float = 60.0  # a dial without a CHANNEL_CREATE by then was refused
    base_window_seconds: float = 120.0  # the least event lag is looked for this far back
    base_bucket_seconds: float = 10.0


class Latency:
    """A smoothed latency (exponentially weighted per sample) that fades once samples stop
    (after ``FADE_AFTER`` seconds without one: a steady stream of samples is not biased)."""

    FADE_AFTER = 1.0

    def __init__(self, weight: float, half_life: float) -> None:
        self.weight = weight
        self.half_life = half_life
        self._mean: float | None = None  # None: no sample yet
        self._at = 0.0

    def observe(self, seconds: float, now: float) -> None:
        current = self.value(now)
        self._mean = seconds if self._mean is None else (
            (1 - self.weight) * current + self.weight * seconds)
        self._at = now

    def value(self, now: float) -> float:
        if not self._mean:
            return 0.0
        age = max(0.0, now - self._at - self.FADE_AFTER)
        return float(self._mean * 0.5 ** (age / self.half_life))


class BaseLag:
    """The least of a measure over a sliding window (kept as one minimum per bucket)."""

    def __init__(self, window: float, bucket: float) -> None:
        self.bucket = bucket
        self._buckets: deque[tuple[int, float]] = deque(maxlen=max(1, round(window / bucket)))

    def add(self, value: float, now: float) -> float:
        """Take ``value`` in; the least over the window, this one included."""
        index = int(now // self.bucket)
        if self._buckets and self._buckets[-1][0] == index:
            if value < self._buckets[-1][1]:
                self._buckets[-1] = (index, value)
        else:
            self._buckets.append((index, value))
        oldest = index - (self._buckets.maxlen or 1) + 1
        while self._buckets[0][0] < oldest:
            self._buckets.popleft()
        return min(least for _, least in self._buckets)


class SwitchHealth:
    """Reads the switch's lateness; :meth:`rate_factor` scales the dial rate (1.0: full speed)."""

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
        self._heartbeat_at = -float("inf")
        self._replies = Latency(0.2, limits.latency_half_life)
        self._dials = Latency(0.2, limits.latency_half_life)
        # Many events a second: each weighs less, so one late burst of a busy reader is a dip.
        self._event_lag = Latency(0.05, limits.latency_half_life)
        self._base_lag = BaseLag(limits.base_window_seconds, limits.base_bucket_seconds)
        self._dialled: dict[str, float] = {}  # channel uuid -> when its originate left
        self._factor = 1.0
        self._factor_at = clock()

    # --- signals ----------------------------------------------------------------------------

    def observe(self, event: object) -> None:
        """An Event Socket listener: every event's lag; HEARTBEAT's load; a dial's
        CHANNEL_CREATE."""
        headers: Mapping[str, str] = getattr(event, "headers", {})
        now = self._clock()
        stamp = _number(headers.get("Event-Date-Timestamp"))
        if stamp is not None:
            lag = now - stamp / 1_000_000
            base = self._base_lag.add(lag, now)
            self._event_lag.observe(lag - base, now)
        name = headers.get("Event-Name")
        if name == "CHANNEL_CREATE" and self._dialled:
            sent_at = self._dialled.pop(headers.get("Unique-ID", ""), None)
            if sent_at is not None:
                self._dials.observe(max(0.0, now - sent_at), now)
        elif name == "HEARTBEAT":
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
        self._replies.observe(seconds, self._clock())

    def dialled(self, channel_uuid: str) -> None:
        """An originate for ``channel_uuid`` is leaving now (its CHANNEL_CREATE will say how
        long the switch took to start the session)."""
        now = self._clock()
        dialled = self._dialled
        # Oldest first: a dial the switch refused never has a CHANNEL_CREATE; forget it. (Only
        # the stale head is looked at: no copy of every dial in flight at each dial.)
        while dialled:
            uuid, sent_at = next(iter(dialled.items()))
            if now - sent_at < self.limits.dial_forget_seconds:
                break
            del dialled[uuid]
        dialled[channel_uuid] = now

    @property
    def idle_cpu(self) -> float | None:
        """The switch machine's idle CPU from a recent HEARTBEAT (None: none recent)."""
        return self._idle_cpu if self._fresh(self._clock()) else None

    def signals(self) -> dict[str, float | None]:
        """The signals now, in seconds, shares and percent (for the log, the doctor, benches)."""
        now = self._clock()
        return {
            "reply_seconds": self._replies.value(now),
            "dial_seconds": self._dials.value(now),
            "event_lag_seconds": self._event_lag.value(now),
            "idle_cpu": self.idle_cpu,
            "session_share": self._session_share if self._fresh(now) else None,
        }

    @property
    def sessions(self) -> int | None:
        """The switch's live sessions (any owner) from a recent HEARTBEAT (None: none recent)."""
        return self._sessions if self._fresh(self._clock()) else None

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
        signals = self.signals()
        idle, share = signals["idle_cpu"], signals["session_share"]
        return (
            f"replies {(signals['reply_seconds'] or 0) * 1000:.0f} ms, "
            f"dials {(signals['dial_seconds'] or 0) * 1000:.0f} ms, "
            f"event lag {(signals['event_lag_seconds'] or 0) * 1000:.0f} ms, "
            f"idle CPU {'?' if idle is None else f'{idle:.0f}%'}, "
            f"sessions {'?' if share is None else f'{share:.0%}'} of the limit"
        )

    def _target(self, now: float) -> float:
        limits = self.limits
        fresh = self._fresh(now)
        starved = fresh and self._idle_cpu is not None and self._idle_cpu <= limits.idle_cpu_starved
        scale = limits.starved_scale if starved else 1.0
        factors = [
            _falling(self._replies.value(now), limits.reply_easy * scale,
                     limits.reply_worst * scale),
            _falling(self._dials.value(now), limits.dial_easy * scale, limits.dial_worst * scale),
            _falling(self._event_lag.value(now), limits.event_lag_easy * scale,
                     limits.event_lag_worst * scale),
        ]
        if fresh and self._session_share is not None:
            factors.append(_falling(self._session_share, limits.sessions_easy,
                                    limits.sessions_worst))
        return max(limits.min_factor, min(factors))


    def _fresh(self, now: float) -> bool:
        return now - self._heartbeat_at <= self.limits.heartbeat_max_age


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

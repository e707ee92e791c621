"""How many calls may be dialled now: free lines, and the calls-per-second budgets.

Pure: the clock is injected. FreeSWITCH rejects sessions above its sessions-per-second budget
("Throttle Error") instead of queueing them, so robocall spends a token per new leg it asks
for, from the organization's bucket and from the switch's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from robocall.dispatch.lines import LineUsage


def free_lines(capacity: int, usage: LineUsage, dials_in_flight: int) -> int:
    """Lines no one uses and no dial of ours is about to take (never negative).

    A dial in flight was sent but its channel has not been seen yet; once seen, the channel is
    in ``usage`` and the dial is no longer in flight, so nothing is counted twice.
    """
    return max(0, capacity - usage.total - dials_in_flight)


@dataclass
class TokenBucket:
    """A budget of ``rate`` tokens per second, holding at most ``burst``."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self._tokens = self.burst
        self._stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> int:
        """Whole tokens that can be taken now."""
        self._refill()
        return int(self._tokens)

    def take(self, count: int = 1) -> None:
        """Spend ``count`` tokens; the caller checked :meth:`available` first."""
        self._refill()
        if count > self._tokens + 1e-9:
            raise ValueError(f"took {count} tokens with {self._tokens:.3f} available")
        self._tokens -= count

    def seconds_until(self, count: int = 1) -> float:
        """How long until ``count`` tokens are available (0 if they are now)."""
        self._refill()
        missing = count - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def set_rate(self, rate: float, burst: float) -> None:
        """Change the budget at once, keeping the tokens already earned (capped by ``burst``)."""
        if rate <= 0 or burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self._refill()
        self.rate, self.burst = rate, burst
        self._tokens = min(self._tokens, burst)


def dials_allowed(free: int, *buckets: TokenBucket) -> int:
    """How many calls to dial now: free lines, bounded by every budget."""
    allowed = free
    for bucket in buckets:
        allowed = min(allowed, bucket.available())
    return max(0, allowed)

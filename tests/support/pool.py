"""Watching a pool of FakeSwitches from outside robocall: an organization's lines as the
switches themselves hold them, summed over every switch at one instant.

Used by the pool tests and by scripts/bench_pool.py (plain Python: no pytest here).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import gevent

from robocall.testing import FakeSwitch
from robocall.testing.channels import Channel


@dataclass
class OrgLines:
    """What the sampler saw of one organization."""

    lines: int
    # Each robo call as it appeared: (robo, other) lines up on all switches at that sample.
    dials: list[tuple[int, int]] = field(default_factory=list)
    # Robo calls that appeared while the organization's lines were already all in use by
    # calls that began before the robo call's originate reached its switch.
    violations: int = 0
    # The same, caused only by other apps' calls that began after robocall decided to dial
    # (their channel is younger than the robo call's decision window): not robocall's to know.
    raced: int = 0
    most_total: int = 0  # the most lines seen in use at one sample, whoever took them
    # Line re-use: when the organization went from all its lines in use to one free, and
    # for each robo call that took such a line, seconds since (sampling adds up to a period).
    freed_at: float | None = None
    reuse: list[float] = field(default_factory=list)
    total: int = 0  # lines in use at the last sample

    @property
    def max_total_at_robo_dial(self) -> int:
        return max((robo + other for robo, other in self.dials), default=0)


class PoolSampler:
    """Samples every live switch of a pool in one step (no greenlet switch in between, so the
    sum is one instant) and counts, per organization, robo and other lines that are up.

    ``switches`` may change while it runs (a switch killed and another started on its port):
    the caller passes a list it edits.

    Which other-app calls robocall could have known of when it sent a robo call: in a pool,
    robocall stamps each originate with the ``Event-Sequence`` of the last event of each
    switch its line count had read (``robocall_lines_seen``, in pool order). ``created_at``
    maps another app's call to (its switch's index in the pool, the sequence number of its
    CHANNEL_CREATE): known when that number is within the stamp. Without both, a call is
    taken as known when it began ``decision_seconds`` or more before the robo call's channel.
    """

    def __init__(self, switches: list[FakeSwitch], lines: dict[str, int], *,
                 period: float = 0.002, decision_seconds: float = 0.0,
                 created_at: dict[str, tuple[int, int]] | None = None) -> None:
        self.switches = switches
        self.orgs = {org_id: OrgLines(count) for org_id, count in lines.items()}
        self.period = period
        self.decision_seconds = decision_seconds
        self.created_at = created_at if created_at is not None else {}
        self.samples = 0
        self.robo_by_switch: dict[int, int] = {}  # id(fake) -> robo channels seen on it
        self._seen: set[str] = set()
        self._greenlet = gevent.spawn(self._run)

    def counts(self, org_id: str) -> tuple[int, int]:
        """(robo, other) channels of the organization up now, on every switch."""
        robo, other = self._lines(self._channels()).get(org_id, ([], []))
        return len(robo), len(other)

    def _channels(self) -> list[tuple[FakeSwitch, Channel]]:
        return [(fake, channel) for fake in list(self.switches) for channel in fake.channels()]

    def _lines(self, channels: Iterable[tuple[FakeSwitch, Channel]]
               ) -> dict[str, tuple[list[Channel], list[Channel]]]:
        found: dict[str, tuple[list[Channel], list[Channel]]] = {}
        for _fake, channel in channels:
            org_id = channel.variables.get("accountcode", "")
            if org_id not in self.orgs or not channel.up:
                continue
            robo, other = found.setdefault(org_id, ([], []))
            (robo if "robocall_call_id" in channel.variables else other).append(channel)
        return found

    def _run(self) -> None:
        while True:
            self.sample()
            gevent.sleep(self.period)

    def sample(self) -> None:
        """One look at every switch (also called by the owner right before it stops)."""
        channels = self._channels()
        for fake, channel in channels:
            if channel.kind == "robo" and channel.uuid not in self._seen:
                self.robo_by_switch[id(fake)] = self.robo_by_switch.get(id(fake), 0) + 1
        now = time.monotonic()
        found = self._lines(channels)
        for org_id, seen in self.orgs.items():
            robo, other = found.get(org_id, ([], []))
            total = len(robo) + len(other)
            seen.most_total = max(seen.most_total, total)
            appeared = [c for c in robo if c.uuid not in self._seen]
            if seen.freed_at is None and seen.total >= seen.lines > total:
                seen.freed_at = now
            elif seen.freed_at is not None and appeared:
                seen.reuse.append(now - seen.freed_at)
                seen.freed_at = None
            elif total >= seen.lines:
                seen.freed_at = None  # another app took the line
            seen.total = total
            for channel in appeared:
                seen.dials.append((len(robo), len(other)))
                if total <= seen.lines:
                    continue
                known = sum(1 for o in other if self._known(o, channel))
                if len(robo) + known > seen.lines:
                    seen.violations += 1
                else:
                    seen.raced += 1
        self._seen |= {c.uuid for _, c in channels if "robocall_call_id" in c.variables}
        self.samples += 1

    def _known(self, other: Channel, robo: Channel) -> bool:
        """Whether robocall could have counted ``other`` when it sent ``robo``."""
        stamp = robo.variables.get("robocall_lines_seen", "")
        created = self.created_at.get(other.uuid)
        if stamp and created is not None:
            index, sequence = created
            seen = [int(part) for part in stamp.split(".")]
            return index < len(seen) and sequence <= seen[index]
        return other.created_mono < robo.created_mono - self.decision_seconds

    def stop(self) -> None:
        self._greenlet.kill()

"""A pool of FreeSWITCH nodes behind one robocall: where each new call goes, and an
organization's lines counted across every switch (docs/pool.md).

Each switch of the pool (a :class:`PoolMember`) has its own Event Socket client, its own line
book (its channels, by the organizations' line rules), its own limits (``status``), its own
health (its reply, dial and event latencies, sessions) and its own pace in the send gate.

- :class:`PooledLines` sums an organization's lines over every switch, read in one step (no
  greenlet switch between switches, so the sum is one instant of robocall's view). A switch
  robocall cannot reach keeps its last-known channels: its lines are never assumed free.
- :meth:`SwitchPool.place` puts new calls on the least-loaded switch that can take one: a
  switch is placeable when it is connected and its unfinished calls from an earlier run are
  settled; "least loaded" is the lowest share of its session cap in use (its live channels
  plus robocall's dials in flight to it), then the most idle CPU, then the name.

Pure but for the clients it holds: placement and counting read state, never the network.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from robocall.dispatch.health import SwitchHealth
from robocall.dispatch.lines import LineBook, LineRule, LineUsage
from robocall.dispatch.pacing import SwitchLimits
from robocall.esl.client import EslClient


@dataclass
class PoolMember:
    """One switch of the pool and what robocall knows of it."""

    name: str
    client: EslClient
    lines: LineBook
    health: SwitchHealth
    limits: SwitchLimits = field(default_factory=SwitchLimits)
    # Its live channels, any owner, from its last listing, kept by the events robocall gets:
    # with the event filters (robocall.dispatch.lines.event_filters) those of no organization
    # are seen only by the listings and the HEARTBEAT's session count.
    channels: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)  # robocall's dials sent here, not yet seen
    recovered: bool = False  # this node's calls left on it by an earlier run are settled
    # No new call before this moment (clock's): set on every (re)connect until its limits are
    # read, and a while longer when it has just restarted (docs/pool.md, "A switch that
    # goes away").
    warm_until: float = 0.0
    clock: Callable[[], float] = time.monotonic
    up_since: float | None = None  # when it started (clock's), from its status' uptime
    health_factor: float = 1.0  # the share of its pace robocall uses now (SwitchHealth)
    last_sequence: int = 0  # Event-Sequence of the last of its events the line book read

    @property
    def placeable(self) -> bool:
        """Whether a new call may go here now."""
        return self.recovered and self.client.connected and self.clock() >= self.warm_until

    @property
    def sessions_left(self) -> int:
        """Sessions it may still take from robocall, under its cap: its live channels (any
        owner) and robocall's dials in flight to it count."""
        return max(0, self.limits.sessions_cap - self.sessions_used)

    @property
    def load(self) -> float:
        """The share of its session cap in use or about to be."""
        return self.sessions_used / max(1, self.limits.sessions_cap)

    @property
    def sessions_used(self) -> int:
        """Its sessions in use or about to be: the channels robocall knows of or, when more,
        those its last HEARTBEAT counted (channels robocall's filters keep from it), and
        robocall's dials in flight to it."""
        return max(len(self.channels), self.health.sessions or 0) + len(self.in_flight)

    def reconnected(self) -> None:
        """Its Event Socket is up again: nothing goes there until its limits are read."""
        self.warm_until = math.inf

    def idle_cpu(self) -> float:
        """Its machine's idle CPU from the last HEARTBEAT (100 before the first one)."""
        idle = self.health.idle_cpu
        return 100.0 if idle is None else idle


class SwitchPool:
    """The switches robocall dials through, in the order they were configured."""

    def __init__(self, members: list[PoolMember]) -> None:
        if not members:
            raise ValueError("a pool needs at least one switch")
        names = [member.name for member in members]
        if len(set(names)) != len(names):
            raise ValueError(f"two switches of the pool have one name: {names}")
        self._members = {member.name: member for member in members}
        self.first = members[0]

    def __iter__(self) -> Iterator[PoolMember]:
        return iter(self._members.values())

    def __len__(self) -> int:
        return len(self._members)

    @property
    def names(self) -> list[str]:
        return list(self._members)

    def member(self, name: str) -> PoolMember:
        """The switch called ``name``; "" (a call placed before robocall had a pool, or
        robocall with one switch) is the first."""
        return self._members.get(name) or self.first

    def ticket_name(self, member: PoolMember) -> str:
        """What a call placed on ``member`` records as its switch: its name in a pool of
        several; "" with one switch (no field in the status then)."""
        return member.name if len(self._members) > 1 else ""

    def client(self, name: str) -> EslClient:
        return self.member(name).client

    @property
    def clients(self) -> Mapping[str, EslClient]:
        return {member.name: member.client for member in self}

    def lines_seen(self) -> str:
        """How far the line count has read each switch's events: their ``Event-Sequence``
        numbers in pool order, joined by dots (ESL-safe: digits and dots only)."""
        return ".".join(str(member.last_sequence) for member in self)

    def any_placeable(self) -> bool:
        return any(member.placeable for member in self)

    def sessions_left(self) -> int:
        """New calls the placeable switches may still take, together."""
        return sum(member.sessions_left for member in self if member.placeable)

    def place(self, count: int) -> list[PoolMember]:
        """Where ``count`` new calls go, one switch per call (fewer if the pool has no more
        room). Each pick counts as a dial in flight for the next (the caller records it)."""
        loads = {m.name: m.sessions_used for m in self if m.placeable}
        picks: list[PoolMember] = []
        for _ in range(count):
            candidates = [
                self._members[name] for name, used in loads.items()
                if used < self._members[name].limits.sessions_cap
            ]
            if not candidates:
                break
            best = min(candidates, key=lambda m: _placement_key(m, loads[m.name]))
            picks.append(best)
            loads[best.name] += 1
        return picks


def _placement_key(member: PoolMember, used: int) -> tuple[float, float, str]:
    """Least loaded first: the share of its session cap in use, then the most idle CPU, then
    the name (so a tie is broken the same way on every robocall node)."""
    return (used / max(1, member.limits.sessions_cap), -member.idle_cpu(), member.name)


class PooledLines:
    """An organization's lines across every switch: the books of all the pool's switches read
    as one (the dispatcher's view of the pool)."""

    def __init__(self, books: Callable[[], list[LineBook]]) -> None:
        self._books = books

    def set_rule(self, organization: str, rule: LineRule) -> None:
        for book in self._books():
            book.set_rule(organization, rule)

    def usage(self, organization: str) -> LineUsage:
        """The organization's lines in use on every switch (robo and other apps'), summed."""
        robo = other = 0
        for book in self._books():
            usage = book.usage(organization)
            robo += usage.robo
            other += usage.other
        return LineUsage(robo=robo, other=other)

    def robo_channel_ids(self, organization: str) -> frozenset[str]:
        found: set[str] = set()
        for book in self._books():
            found |= book.robo_channel_ids(organization)
        return frozenset(found)

    def knows(self, unique_id: str) -> bool:
        return any(book.knows(unique_id) for book in self._books())

    def has_ended(self, unique_id: str) -> bool:
        return any(book.has_ended(unique_id) for book in self._books())

    def ended_among(self, unique_ids: set[str] | frozenset[str]) -> set[str]:
        """Those of ``unique_ids`` seen released on any switch."""
        found: set[str] = set()
        for book in self._books():
            found |= book.ended_among(unique_ids)
        return found

    def seen_among(self, unique_ids: set[str] | frozenset[str]) -> set[str]:
        """Those of ``unique_ids`` holding a line on a switch now or seen released on one."""
        found: set[str] = set()
        for book in self._books():
            found |= book.seen_among(unique_ids)
        return found

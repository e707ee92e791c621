"""Which live FreeSWITCH channels are which organization's lines.

An organization's lines are shared by robocall's calls and the calls its people make from other
apps, so robocall counts every live channel that matches the organization's line rule — a channel
variable such as ``accountcode=<org>`` or ``sip_gateway_name=<trunk>`` — from the Event Socket
stream, and reconciles the count with ``show channels as json``.

Pure: fed event headers and channel rows, with the clock injected. The dispatcher owns the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from robocall.esl.commands import ANY_VALUE, filter_value

# A channel occupies its line from its creation until its hangup completes; CHANNEL_DESTROY can
# trail HANGUP_COMPLETE, and a missed HANGUP_COMPLETE must not leak a line forever.
_LINE_RELEASED = frozenset({"CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})

# FreeSWITCH writes its channels table through an asynchronous SQL queue, so a channel that was
# just created may be missing from ``show channels`` and one that just ended may linger there.
DEFAULT_SETTLE_SECONDS = 5.0

ROBO_MARKER = "variable_robocall_call_id"


@dataclass(frozen=True)
class LineRule:
    """The channel variable whose value marks a channel as one of an organization's lines."""

    variable: str
    value: str


# What robocall reads of a switch's event stream besides its organizations' lines: every
# event of its own legs (a call's, a transfer's: both carry robocall_call_id from the
# originate or the bridge), the switch's health and its going down — but not the completion
# of ``park``: every leg robocall dials waits in ``&park()``, whose CHANNEL_EXECUTE_COMPLETE
# comes at hangup and says nothing robocall reads (the hangup events do); a negative filter
# drops it on the switch (one of seven events a call, ~6 KB of JSON each on the lab). Only
# CHANNEL_EXECUTE and CHANNEL_EXECUTE_COMPLETE carry ``Application``. BACKGROUND_JOB results
# come on the command connection, which is never filtered.
OWN_EVENT_FILTERS: Final = (
    (ROBO_MARKER, ANY_VALUE),
    ("Event-Name", "HEARTBEAT"),
    ("Event-Name", "SHUTDOWN"),
    ("Application", "-park"),
)
# More values of one line variable than this: one filter that lets through every channel
# holding the variable (the switch compares an event with its filters one by one).
MAX_VALUE_FILTERS: Final = 64


def event_filters(rules: Iterable[LineRule]) -> list[tuple[str, str]]:
    """The Event Socket filters (header, value) that let through every event robocall reads:
    its own legs' (:data:`OWN_EVENT_FILTERS`) and every channel event that can match one of
    ``rules`` — the event carries the rule's variable with its value (compared without case by
    the switch: a superset of what :meth:`LineBook.observe` then matches exactly). A channel
    whose variable is set after its creation is let through from its first event that carries
    it, as the line book counts it from then without filters. Callees' legs and other apps'
    calls of no organization stay on the switch.

    Every event robocall subscribes to (commands.ROBOCALL_EVENTS) carries the channel's
    variables whatever ``verbose_events`` says (FreeSWITCH 1.11.1,
    switch_channel_event_set_extended_data), so a variable filter sees each of them. What the
    filters cost: a channel whose rule variable is changed or unset while it is up is released
    by the next listing (the reconciliation) instead of by its HANGUP_COMPLETE."""
    values: dict[str, list[str]] = {}
    for rule in rules:
        wanted = values.setdefault(f"variable_{rule.variable}", [])
        value = filter_value(rule.value)
        if value not in wanted:
            wanted.append(value)
    filters = list(OWN_EVENT_FILTERS)
    for header, wanted in values.items():
        if ANY_VALUE in wanted or len(wanted) > MAX_VALUE_FILTERS:
            wanted = [ANY_VALUE]
        filters += [(header, value) for value in wanted]
    return filters


@dataclass(frozen=True)
class LineUsage:
    """Lines in use: ``robo`` by robocall's calls, ``other`` by the organization's other apps."""

    robo: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.robo + self.other


@dataclass
class _Channel:
    organization: str
    robo: bool
    seen_at: float


class LineBook:
    """Live channels per organization, kept from events and reconciled with channel listings."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    ) -> None:
        self._clock = clock
        self._settle_seconds = settle_seconds
        self._rules: dict[str, LineRule] = {}
        # variable -> value -> organization: one dict probe per distinct line variable (usually
        # just accountcode), however many organizations there are. It runs on every event.
        self._owners: dict[str, dict[str, str]] = {}
        self._channels: dict[str, _Channel] = {}  # Unique-ID -> channel
        self._ended: dict[str, float] = {}  # Unique-ID -> when its line was released
        self._usage: dict[str, LineUsage] = {}  # kept current so reading it costs nothing
        self._robo: dict[str, set[str]] = {}  # organization -> Unique-IDs of its robo channels

    # --- rules --------------------------------------------------------------------------------

    def set_rule(self, organization: str, rule: LineRule) -> None:
        """Count channels matching ``rule`` as ``organization``'s lines from now on."""
        old = self._rules.pop(organization, None)
        if old is not None:
            owners = self._owners.get(old.variable, {})
            owners.pop(old.value, None)
            if not owners:
                self._owners.pop(old.variable, None)
        self._rules[organization] = rule
        self._owners.setdefault(rule.variable, {})[rule.value] = organization

    def organization_of(self, headers: Mapping[str, str]) -> str | None:
        """The organization whose line rule the event's channel variables match, if any."""
        for variable, owners in self._owners.items():
            value = headers.get(f"variable_{variable}")
            if value is not None:
                organization = owners.get(value)
                if organization is not None:
                    return organization
        return None

    # --- the event stream ---------------------------------------------------------------------

    def observe(self, headers: Mapping[str, str]) -> str | None:
        """Account one event; return the organization whose line count changed, if any."""
        unique_id = headers.get("Unique-ID")
        if not unique_id:
            return None
        name = headers.get("Event-Name", "")
        known = self._channels.get(unique_id)
        if name in _LINE_RELEASED:
            if known is None:
                self._ended.setdefault(unique_id, self._clock())
                return None
            self._release(unique_id, self._clock())
            return known.organization
        if known is not None or unique_id in self._ended:
            return None
        # Any event can be the first to carry the line variable: a PBX call may set its
        # accountcode in the dial plan, after CHANNEL_CREATE.
        organization = self.organization_of(headers)
        if organization is None:
            return None
        self._occupy(unique_id, _Channel(organization, ROBO_MARKER in headers, self._clock()))
        return organization

    # --- reconciliation -----------------------------------------------------------------------

    def reconcile(
        self,
        rows: Iterable[Mapping[str, str]],
        is_robo: Callable[[str], bool] = lambda unique_id: False,
        robo_owner: Callable[[str], str | None] = lambda unique_id: None,
    ) -> set[str]:
        """Correct the book from a ``show channels as json`` listing taken just now.

        A channel in the book but absent from the listing ended unseen (its events were lost),
        unless it is younger than the settle time. A listed channel unknown to the book is added
        when it is a robo call robocall still runs (``robo_owner`` names its organization: a
        call re-adopted after a reconnect holds its line whatever its columns say) or when its
        ``accountcode`` column matches a rule (a ringing channel's column is still empty, so
        others are found by their events instead). Returns the organizations whose count
        changed.
        """
        now = self._clock()
        listed: dict[str, Mapping[str, str]] = {row["uuid"]: row for row in rows if row.get("uuid")}
        changed: set[str] = set()
        for unique_id, channel in list(self._channels.items()):
            if unique_id not in listed and now - channel.seen_at >= self._settle_seconds:
                self._release(unique_id, now)
                changed.add(channel.organization)
        for unique_id, row in listed.items():
            if unique_id in self._channels or unique_id in self._ended:
                continue
            organization = robo_owner(unique_id)
            robo = organization is not None or is_robo(unique_id)
            if organization is None:
                organization = self._owners.get("accountcode", {}).get(row.get("accountcode", ""))
            if organization is not None:
                self._occupy(unique_id, _Channel(organization, robo, now))
                changed.add(organization)
        self._forget_ended(now)
        return changed

    def _occupy(self, unique_id: str, channel: _Channel) -> None:
        self._channels[unique_id] = channel
        if channel.robo:
            self._robo.setdefault(channel.organization, set()).add(unique_id)
        self._usage[channel.organization] = _counted(self.usage(channel.organization), channel, +1)

    def _release(self, unique_id: str, now: float) -> None:
        channel = self._channels.pop(unique_id)
        self._ended[unique_id] = now
        if channel.robo:
            self._robo.get(channel.organization, set()).discard(unique_id)
        self._usage[channel.organization] = _counted(self.usage(channel.organization), channel, -1)

    def _forget_ended(self, now: float) -> None:
        horizon = now - 2 * self._settle_seconds
        for unique_id in [u for u, at in self._ended.items() if at < horizon]:
            del self._ended[unique_id]

    # --- reading --------------------------------------------------------------------------------

    def usage(self, organization: str) -> LineUsage:
        """The organization's lines in use now, robo and other."""
        return self._usage.get(organization, LineUsage())

    def robo_channel_ids(self, organization: str) -> frozenset[str]:
        """Unique-IDs of the organization's live robo channels (calls and their transfers)."""
        return frozenset(self._robo.get(organization, ()))

    def knows(self, unique_id: str) -> bool:
        """Whether the channel holds a line in the book now."""
        return unique_id in self._channels

    def ended_among(self, unique_ids: set[str] | frozenset[str]) -> set[str]:
        """Those of ``unique_ids`` whose lines were seen released (:meth:`has_ended`), in one
        set operation: the dispatcher asks this of every line at each claim."""
        return self._ended.keys() & unique_ids

    def seen_among(self, unique_ids: set[str] | frozenset[str]) -> set[str]:
        """Those of ``unique_ids`` holding a line now or seen released."""
        return (self._channels.keys() & unique_ids) | (self._ended.keys() & unique_ids)

    def has_ended(self, unique_id: str) -> bool:
        """Whether the channel's line was seen released (within the last two settle times)."""
        return unique_id in self._ended

    def channel_ids(self, organization: str) -> set[str]:
        return {u for u, c in self._channels.items() if c.organization == organization}


def _counted(usage: LineUsage, channel: _Channel, delta: int) -> LineUsage:
    if channel.robo:
        return LineUsage(robo=usage.robo + delta, other=usage.other)
    return LineUsage(robo=usage.robo, other=usage.other + delta)

"""The dispatcher: dials an organization's queued calls exactly as fast as its lines free up.

free = lines - live lines (robo and other apps, counted from the event stream) - dials in flight.
How many of them leave, and when, is the send gate's (``dispatch.sending``): calls-per-second is
spent when an originate is sent, at the switch's pace (read from the switch on every connect)
and the organization's; the dispatcher claims only what the gate can send within a second.
It is woken by events — a line released, a new request, a capacity change — and by a timer as a
safety net, so a freed line is reused within milliseconds. Calls are claimed first in, first out
(by request submission, then destination order) and committed as ``dialing`` before their
originate leaves, so a crash never dials anyone twice.

The event listener runs in the Event Socket reader: it only updates counters and sets flags.
Claiming (a database write) and spawning call greenlets happen in the dispatcher's own greenlet.

With a pool of switches (``dispatch.pool``, docs/pool.md) the lines are summed over every
switch, each claimed call is placed on one switch before it is committed, and dispatch goes on
while at least one switch can take calls. Right before each originate leaves, the send gate
asks :meth:`Dispatcher.may_dial` once more against the freshest sum: a line another app took
while the call waited for its turn sends it back to the queue instead of over the lines.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import gevent
import gevent.event

from robocall.calls.prefetch import FirstPrompts
from robocall.calls.runner import SHUTDOWN_CAUSE, SHUTDOWN_HANGUP_SECONDS, CallLog, CallRunner
from robocall.dispatch.health import SwitchHealth
from robocall.dispatch.lines import LineBook, LineRule, LineUsage, event_filters
from robocall.dispatch.pacing import SwitchLimits, free_lines, parse_switch_status
from robocall.dispatch.pool import PooledLines, PoolMember, SwitchPool
from robocall.dispatch.sending import SendGate
from robocall.errors import LeaseLost, RobocallError, SwitchError
from robocall.esl.client import EslClient, new_uuid
from robocall.esl.protocol import Event
from robocall.flow.compile import Program
from robocall.flow.model import MachineDetection
from robocall.store.records import CallStatus, CallTicket, ClaimedCall, OrganizationLines

log = logging.getLogger(__name__)

LISTING_TIMEOUT_SECONDS = 30.0
# How long a switch that restarted while robocall knew it is given before new calls go there.
RESTART_WARMUP_SECONDS = 15.0
# Uptime is read in whole seconds, late: a start more than this later than the one known is
# a restart.
RESTART_DETECTION_SLACK_SECONDS = 3.0
_LINE_EVENTS = frozenset({"CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})
# A claim's duration, as the send gate's room counts it (the calls sent while a claim runs):
# the recent ones weigh most; a claim stalled on a busy store counts at most this long.
CLAIM_SECONDS_WEIGHT = 0.2
CLAIM_SECONDS_MAX = 0.5


class DispatchStore(CallLog, Protocol):
    """The queries the dispatcher needs, besides the runner's call log (``Repo`` has both)."""

    def organizations_with_lines(self) -> list[OrganizationLines]: ...

    def organizations_with_queued_calls(self) -> set[str]: ...

    def claim_calls(
        self,
        organization_id: str,
        channel_uuids: Sequence[str],
        *,
        node_id: str | None = None,
        budget: Callable[[frozenset[str]], int] | None = None,
        lease_token: str | None = None,
        switches: Sequence[str] | None = None,
    ) -> list[ClaimedCall]: ...


class Programs(Protocol):
    """Compiled call flows by request (compiled once, shared by all the request's calls)."""

    def program(self, request_seq: int, call_flow_json: str) -> Program: ...

    def machine_detection(self, stored_json: str | None) -> MachineDetection | None: ...


@dataclass
class _Organization:
    lines: OrganizationLines
    in_flight: set[str] = field(default_factory=set)  # channel uuids claimed, no channel seen yet
    # Channel uuids of calls other nodes had claimed and not ended at this node's last claim
    # (PostgreSQL): their lines count at the send-time check until their channels are seen.
    claimed_elsewhere: frozenset[str] = frozenset()
    live_calls: int = 0  # robo calls whose runner has not finished


@dataclass(frozen=True)
class LineReport:
    """What ``GET /v1/lines`` shows for one organization."""

    lines: int
    robo: int
    other: int
    in_flight: int
    free: int


class Dispatcher:
    """Claims queued calls per organization as lines free up, and hands them to the runner."""

    def __init__(
        self,
        store: DispatchStore,
        switch: EslClient | SwitchPool,
        runner: CallRunner,
        programs: Programs,
        gate: SendGate,
        *,
        lines: LineBook | None = None,
        switch_cps: float | None = None,
        tick_seconds: float = 1.0,
        reconcile_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        new_uuid: Callable[[], str] = new_uuid,
        node_id: str | None = None,
        lease_token: str | None = None,
        first_prompts: FirstPrompts | None = None,
        health: SwitchHealth | None = None,
    ) -> None:
        self.store = store
        # Renders the queue head's first messages; calls are claimed only once theirs is ready.
        self.first_prompts = first_prompts
        # Scales the switch's pace down while the switch is overloaded (robocall degrades,
        # it does not collapse); the organizations' own budgets are theirs and stay.
        self.health = health
        self.node_id = node_id
        self.lease_token = lease_token  # claims are made only while this node's lease is ours
        if isinstance(switch, SwitchPool):
            self.pool = switch
        else:  # one switch: a pool of one, its calls settled by whoever built it
            self.pool = SwitchPool([PoolMember(
                "", switch, lines or LineBook(clock=clock),
                health or SwitchHealth(clock=clock), recovered=True,
            )])
        self.switch = self.pool.first.client
        self.runner = runner
        if len(self.pool) > 1:
            runner.lines_seen = self.pool.lines_seen
        self.programs = programs
        # Every switch's book read as one: an organization's lines are summed over the pool.
        self.lines = PooledLines(lambda: [member.lines for member in self.pool])
        self.clock = clock
        self.wall_clock = wall_clock
        self.new_uuid = new_uuid
        self.tick_seconds = tick_seconds
        self.restart_warmup_seconds = RESTART_WARMUP_SECONDS
        self.reconcile_seconds = reconcile_seconds
        # Each switch's limits until it tells its own (FreeSWITCH's defaults), and the pace the
        # settings allow at most (None: the switch's own, less headroom).
        self.switch_cps = switch_cps
        # Ask the switches for only the events robocall reads (Settings.event_filters).
        self.event_filters = True
        self.gate = gate  # the runner's too: it spends the budgets as each originate leaves
        for member in self.pool:
            self.gate.set_switch_rate(member.limits.legs_per_second(switch_cps), member.name)
        self.gate.on_refused = self._limits_changed
        self.gate.may_dial = self.may_dial
        self.gate.on_sent = self._dial_sent
        self._reading_limits: gevent.Greenlet | None = None
        self._listeners: list[tuple[PoolMember, Callable[[Event], None]]] = []
        self._placed: dict[str, PoolMember] = {}  # channel uuid -> the switch it was placed on
        self._organizations: dict[str, _Organization] = {}
        self._dirty: set[str] = set()
        self._claim_seconds = 0.0  # how long a claim takes, lately
        self._woken = gevent.event.Event()
        self._stopping = False
        self._halted = False  # the node's lease was lost: claim nothing more
        self._loop: gevent.Greenlet | None = None
        self._calls: set[gevent.Greenlet] = set()
        self._live_channels: set[str] = set()  # channel uuids of robo calls being run
        # The same, with their organization: a re-adopted call's line is counted from the
        # switch's listing even while its channel's accountcode column is still empty.
        self._robo_owner: dict[str, str] = {}
        # Measured by the dispatch benchmark: hangup seen -> next originate handed to the runner.
        self.on_dispatch: Callable[[str, int], None] | None = None
        # Timing hooks for the metrics (robocall.metrics.DispatchTimer): a line of the
        # organization was released; its queue had fewer calls than free lines.
        self.on_line_freed: Callable[[str], None] | None = None
        self.on_queue_drained: Callable[[str], None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load organizations, listen to the switch's events, and start dispatching."""
        if self._stopping:
            return
        self.refresh_organizations()
        self.gate.start_cold()
        for member in self.pool:
            listener = functools.partial(self._on_event, member)
            member.client.add_event_listener(listener)
            self._listeners.append((member, listener))
        self._loop = gevent.spawn(self._run)

    def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop dispatching; let live calls finish for up to ``grace_seconds``. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._woken.set()
        # Calls claimed and not yet sent go back to the queue: nothing new leaves from now on.
        self.gate.close()
        self.runner.stop_dialing()
        if self.first_prompts is not None:
            self.first_prompts.stop()
        if self._loop is not None:
            self._loop.join(timeout=5)
        gevent.joinall(list(self._calls), timeout=grace_seconds)
        if self._calls:
            # The grace is over: the calls still live are hung up and recorded final, each by
            # its own runner (which also tells the observers).
            log.warning("ending %d live call(s) at shutdown (%s)", len(self._calls),
                        SHUTDOWN_CAUSE)
            self.runner.end_live_calls(SHUTDOWN_CAUSE)
            gevent.joinall(list(self._calls), timeout=SHUTDOWN_HANGUP_SECONDS + 5)
        for member, listener in self._listeners:
            member.client.remove_event_listener(listener)

    def lease_lost(self) -> None:
        """Another process holds this node now: dial nothing more (live calls run on)."""
        self._halted = True
        self.gate.close()
        self.runner.stop_dialing()

    def wake(self, organization_id: str | None = None) -> None:
        """Something changed (a new request, a capacity change): dispatch again now."""
        if organization_id is None:
            self._dirty.update(self._organizations)
        else:
            self._dirty.add(organization_id)
        self._woken.set()

    def calls_stored(self, organization_id: str) -> None:
        """A request of the organization was stored (the API's): dispatch now, its first
        messages looked ahead at once."""
        if self.first_prompts is not None:
            self.first_prompts.calls_stored(organization_id)
        self.wake(organization_id)

    def refresh_organizations(self) -> None:
        """Reload every organization's lines, pace and line rule from the store."""
        for lines in self.store.organizations_with_lines():
            current = self._organizations.get(lines.id)
            if current is None:
                self._organizations[lines.id] = _Organization(lines)
            else:
                current.lines = lines
            self.gate.set_rate(lines.id, lines.cps)
            self.lines.set_rule(lines.id, LineRule(lines.line_variable, lines.line_value))
        # The switches send only what robocall reads: its legs and the organizations' lines.
        filters = event_filters(
            LineRule(o.lines.line_variable, o.lines.line_value)
            for o in self._organizations.values()
        ) if self.event_filters else []
        for member in self.pool:
            member.client.set_event_filters(filters)

    @property
    def switch_limits(self) -> SwitchLimits:
        """The first switch's limits (the only switch's without a pool)."""
        return self.pool.first.limits

    def resync(self, member: PoolMember | None = None) -> None:
        """Reconcile each switch's line book (or ``member``'s) with its channel listing (on
        every (re)connect and periodically: events lost with a connection must not leak or
        hide lines). A switch that cannot be asked keeps what its book last knew."""
        for each in [member] if member is not None else list(self.pool):
            if each.client.connected:
                self._resync_member(each)
        self.wake()

    def _resync_member(self, member: PoolMember) -> None:
        try:
            # A loaded switch lists 1,000 channels slowly: late is not lost.
            rows = member.client.show_channels(timeout=LISTING_TIMEOUT_SECONDS)
        except SwitchError as err:
            log.warning("could not list switch %s's channels: %s", member.name or "", err)
            return
        member.channels = {row["uuid"] for row in rows if row.get("uuid")}
        changed = member.lines.reconcile(
            rows, is_robo=self._live_channels.__contains__, robo_owner=self._robo_owner.get
        )
        if changed:
            log.info("line counts corrected from switch %s's listing for %s",
                     member.name or "", sorted(changed))
        # A dial whose channel the listing showed (its events lost with a connection) is a
        # line in the book now, no longer one in flight: not counted twice.
        member.in_flight = {u for u in member.in_flight if not member.lines.knows(u)}
        for organization in self._organizations.values():
            organization.in_flight = {
                channel_uuid for channel_uuid in organization.in_flight
                if not self.lines.knows(channel_uuid)
            }

    def read_switch_limits(self, member: PoolMember | None = None) -> SwitchLimits:
        """Ask each switch (or ``member``) for its sessions-per-second and max-sessions
        (``status``) and pace below them; the configured ``switch_cps`` only ever lowers the
        pace. On every (re)connect: the switch may have restarted with other settings.
        Returns the first switch's limits (or ``member``'s)."""
        for each in [member] if member is not None else list(self.pool):
            self._read_member_limits(each)
        return (member or self.pool.first).limits

    def _read_member_limits(self, member: PoolMember) -> None:
        try:
            limits = parse_switch_status(member.client.api("status"))
        except (SwitchError, ValueError) as err:
            log.warning("could not read switch %s's limits (%s); pacing for %s",
                        member.name or "", err, member.limits)
            # A slow switch is not a lost one: it takes calls at FreeSWITCH's default pace.
            member.warm_until = min(member.warm_until, self.clock())
            return
        member.limits = limits
        self._warm_up(member, limits)
        rate = limits.legs_per_second(self.switch_cps)
        self.gate.set_switch_rate(rate * member.health_factor, member.name)
        log.info(
            "switch %s allows %d sessions/s and %d sessions: sending at most %g legs/s, "
            "keeping under %d sessions", member.name or "",
            limits.sessions_per_second, limits.max_sessions, rate, limits.sessions_cap,
        )

    def _warm_up(self, member: PoolMember, limits: SwitchLimits) -> None:
        """A switch robocall knew that has restarted since (its uptime began again) gets no
        new call until it has been up ``restart_warmup_seconds``: FreeSWITCH takes Event
        Socket connections before its SIP profiles and gateways are up (the lab's first dials
        after a restart failed CHAN_NOT_IMPLEMENTED)."""
        now = self.clock()
        uptime = limits.uptime_seconds
        up_since = None if uptime is None else now - uptime
        restarted = (
            up_since is not None and member.up_since is not None
            and up_since > member.up_since + RESTART_DETECTION_SLACK_SECONDS
        )
        if restarted and uptime is not None and uptime < self.restart_warmup_seconds:
            member.warm_until = now + self.restart_warmup_seconds - uptime
            log.warning("switch %s restarted %.0f s ago: new calls go there in %.0f s",
                        member.name or "", uptime, member.warm_until - now)
        else:
            member.warm_until = min(member.warm_until, now)
        member.up_since = up_since if up_since is not None else member.up_since

    def _limits_changed(self) -> None:
        """A switch refused a send we paced under its budget: read the limits again (once,
        however many refusals come together)."""
        if self._reading_limits is None or self._reading_limits.dead:
            self._reading_limits = gevent.spawn(self.read_switch_limits)

    # --- reading ------------------------------------------------------------------------------

    def report(self, organization_id: str) -> LineReport | None:
        """The organization's lines now: in use by robo calls and other apps, in flight, free."""
        organization = self._organizations.get(organization_id)
        if organization is None:
            return None
        usage = self.lines.usage(organization_id)
        return LineReport(
            lines=organization.lines.max_concurrent_calls,
            robo=usage.robo,
            other=usage.other,
            in_flight=len(organization.in_flight),
            free=self._free(organization, usage),
        )

    def reports(self) -> dict[str, LineReport]:
        """:meth:`report` for every organization the dispatcher knows."""
        return {
            organization_id: report
            for organization_id in list(self._organizations)
            if (report := self.report(organization_id)) is not None
        }

    # --- the event listener (runs in the Event Socket reader: counters only) -----------------

    def _on_event(self, member: PoolMember, event: Event) -> None:
        headers = event.headers
        name = headers.get("Event-Name")
        unique_id = headers.get("Unique-ID", "")
        sequence = headers.get("Event-Sequence", "")
        if sequence.isdigit():
            member.last_sequence = int(sequence)
        if name == "SHUTDOWN":
            # It goes down: its endpoints unload while its Event Socket still answers (a dial
            # sent now fails CHAN_NOT_IMPLEMENTED). Nothing new goes there until it is back.
            member.reconnected()
            log.warning("switch %s is shutting down: no new calls go there", member.name or "")
            return
        if name == "CHANNEL_CREATE":
            member.channels.add(unique_id)
            member.in_flight.discard(unique_id)
        elif name in _LINE_EVENTS:
            member.channels.discard(unique_id)
        changed = member.lines.observe(headers)
        if changed is None:
            return
        organization = self._organizations.get(changed)
        if organization is None:
            return
        # Seen as a channel now, so it is counted in the line book and no longer in flight.
        organization.in_flight.discard(unique_id)
        member.in_flight.discard(unique_id)
        if name in _LINE_EVENTS:
            if self.on_line_freed is not None:
                self.on_line_freed(changed)
            self.wake(changed)

    # --- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        next_refresh = self.clock()
        next_reconcile = self.clock() + self.reconcile_seconds
        while not self._stopping:
            self._woken.wait(timeout=self.tick_seconds)
            self._woken.clear()
            if self._stopping:
                break
            # Without a switch that can take calls, dispatch pauses (a reconnect wakes everyone).
            if self.pool.any_placeable() and not self._halted:
                self._dispatch_dirty()
            # The safety net after the dispatch, so a line freed just now waits on no query.
            now = self.clock()
            if now >= next_refresh:
                next_refresh = now + self.tick_seconds
                self._safety_net()
                if self._dirty:
                    self._woken.set()
            if now >= next_reconcile:
                next_reconcile = now + self.reconcile_seconds
                gevent.spawn(self.resync)

    def _dispatch_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for organization_id in dirty:
            try:
                self._dispatch(organization_id)
            except LeaseLost as err:
                log.error("%s: no more calls are claimed or sent by this process", err)
                self.lease_lost()
                return
            except Exception:
                # One organization's failure (a busy database) must not stop the others.
                log.exception("dispatch for %s failed; retrying on the next tick", organization_id)
                self._dirty.add(organization_id)

    def _safety_net(self) -> None:
        try:
            self.refresh_organizations()
            self._dirty.update(self.store.organizations_with_queued_calls())
        except Exception:
            log.exception("could not read organizations; retrying on the next tick")

    def _free(self, organization: _Organization, usage: LineUsage) -> int:
        return free_lines(
            organization.lines.max_concurrent_calls, usage, len(organization.in_flight)
        )

    def _dispatch(self, organization_id: str) -> None:
        organization = self._organizations.get(organization_id)
        if organization is None:
            return
        free = self._free(organization, self.lines.usage(organization_id))
        self._pace_switches()
        allowed = min(free, self.gate.room(organization_id, self._claim_seconds),
                      self.pool.sessions_left())
        if allowed <= 0:
            if free > 0:
                self._wake_later(organization_id)
            return
        if self.first_prompts is not None:
            # A call waits for its first audio before it takes a line, never while holding one:
            # the prefetcher wakes this organization when the next call's audio is ready.
            allowed = self.first_prompts.ready(organization_id, allowed)
            if allowed <= 0:
                return
        # Where each goes, chosen before the claim: the switch is committed with the call.
        placements = self.pool.place(allowed)
        allowed = len(placements)
        if allowed <= 0:
            return
        uuids = [self.new_uuid() for _ in range(allowed)]
        began = self.clock()
        claimed = self.store.claim_calls(
            organization_id,
            uuids,
            node_id=self.node_id,
            budget=lambda unfinished: self._lines_left(organization, unfinished),
            lease_token=self.lease_token,
            switches=[self.pool.ticket_name(member) for member in placements],
        )
        took = min(CLAIM_SECONDS_MAX, self.clock() - began)
        self._claim_seconds += CLAIM_SECONDS_WEIGHT * (took - self._claim_seconds)
        if self.first_prompts is not None:
            self.first_prompts.claimed(organization_id, [call.ticket.call_id for call in claimed])
        for call, member in zip(claimed, placements, strict=False):
            self._dial(organization, call, member)
        if len(claimed) == allowed:
            # There may be more queued calls and more free lines: look again right away.
            self._dirty.add(organization_id)
            self._woken.set()
        elif self.on_queue_drained is not None:
            self.on_queue_drained(organization_id)

    def _pace_switches(self) -> None:
        """Send to each switch at the share of the pace its limits allow that its health
        says (SwitchHealth's verdict); the gate is told only when that moved by more than 1 %."""
        for member in self.pool:
            factor = member.health.rate_factor()
            if abs(factor - member.health_factor) > 0.01:
                member.health_factor = factor
                self.gate.set_switch_rate(
                    member.limits.legs_per_second(self.switch_cps) * factor, member.name
                )

    def _dial_sent(self, channel_uuid: str, switch: str | None) -> None:
        """An originate leaves for ``switch``: its health times the channel's creation."""
        self.pool.member(switch or "").health.dialled(channel_uuid)

    def may_dial(self, organization_id: str, channel_uuid: str) -> bool:
        """Asked by the send gate as the call's originate is about to leave: whether the
        organization's lines, summed over every switch now, still hold its dials in flight
        (this one among them). Other apps' calls that began since the claim may have taken
        the line: then this call goes back to the queue rather than over the lines."""
        organization = self._organizations.get(organization_id)
        if organization is None or channel_uuid not in organization.in_flight:
            return True
        usage = self.lines.usage(organization_id)
        # Other nodes' dials the last claim found in flight, whose channels are not seen yet.
        elsewhere = organization.claimed_elsewhere
        if elsewhere:  # set operations: this runs for every call, over up to every line
            elsewhere = elsewhere - self.lines.seen_among(elsewhere)
        in_use = usage.total + len(organization.in_flight) + len(elsewhere)
        return in_use <= organization.lines.max_concurrent_calls

    def _lines_left(self, organization: _Organization, unfinished: frozenset[str]) -> int:
        """Free lines counted under the organization's lock in the database: ``unfinished`` are
        the channel uuids of its calls that any node claimed and has not ended, so another
        node's dial in flight holds a line here too, though this node has not seen its channel.
        A channel the switch reported gone frees its line even before its end is recorded."""
        organization_id = organization.lines.id
        # Only the dials robocall has not seen a channel of: at most a few, where the calls
        # this node runs already show on the switch (may_dial reads the set at every dial).
        elsewhere = unfinished - organization.in_flight
        organization.claimed_elsewhere = elsewhere - self.lines.seen_among(elsewhere)
        robo = self.lines.robo_channel_ids(organization_id) | unfinished | organization.in_flight
        in_use = (
            self.lines.usage(organization_id).other + len(robo)
            - len(self.lines.ended_among(robo))
        )
        return organization.lines.max_concurrent_calls - in_use

    def _dial(self, organization: _Organization, call: ClaimedCall, member: PoolMember) -> None:
        ticket = call.ticket
        try:
            program = self.programs.program(call.request_seq, call.call_flow_json)
            detection = self.programs.machine_detection(call.machine_detection_json)
        except RobocallError as err:
            # Validated at submission, but e.g. a TTS language removed since: fail the call
            # with a cause that says so rather than dial someone robocall cannot talk to.
            log.error("call %s: its call flow no longer compiles: %s", ticket.call_id, err)
            self.store.call_ended(
                ticket.call_id,
                status=CallStatus.FAILED,
                hangup_cause="INVALID_CALL_FLOW",
                ended_at=self.wall_clock(),
                duration_seconds=None,
            )
            return
        self.gate.expect(organization.lines.id, ticket.channel_uuid)
        organization.in_flight.add(ticket.channel_uuid)
        member.in_flight.add(ticket.channel_uuid)
        self._placed[ticket.channel_uuid] = member
        organization.live_calls += 1
        self._live_channels.add(ticket.channel_uuid)
        self._robo_owner[ticket.channel_uuid] = organization.lines.id
        greenlet = self.runner.spawn(
            ticket, program, on_done=self._call_done,
            machine_detection=detection,
        )
        self._calls.add(greenlet)
        greenlet.link(self._calls.discard)
        if self.on_dispatch is not None:
            self.on_dispatch(organization.lines.id, ticket.call_id)

    def _call_done(self, ticket: CallTicket, status: CallStatus) -> None:
        self._live_channels.discard(ticket.channel_uuid)
        self.gate.forget(ticket.organization_id, ticket.channel_uuid)
        self._robo_owner.pop(ticket.channel_uuid, None)
        member = self._placed.pop(ticket.channel_uuid, None)
        if member is not None:
            member.in_flight.discard(ticket.channel_uuid)
        organization = self._organizations.get(ticket.organization_id)
        if organization is None:
            return
        organization.live_calls -= 1
        if status is CallStatus.QUEUED and self.first_prompts is not None:
            # Back in the queue undialled (lines taken meanwhile, a refused dial): look again.
            self.first_prompts.calls_stored(ticket.organization_id)
        # An originate that never made a channel leaves no event to clear it from flight.
        if ticket.channel_uuid in organization.in_flight:
            organization.in_flight.discard(ticket.channel_uuid)
            self.wake(ticket.organization_id)

    def _wake_later(self, organization_id: str) -> None:
        gevent.spawn_later(self.gate.seconds_until_room(organization_id, self._claim_seconds),
                           self.wake, organization_id)

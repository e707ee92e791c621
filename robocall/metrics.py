"""``GET /metrics``: robocall in Prometheus' text format, from a registry of its own.

Two kinds of numbers. Counters and the dispatch-delay histogram are fed as things happen: a
:class:`CallMetrics` observer hears each moment of each call (``robocall.calls.observers``),
and a :class:`DispatchTimer` hears the dispatcher's timing hooks. Gauges of the present — lines
in use per organization and origin, queue depth, the Event Socket connection — are read when
Prometheus scrapes (:class:`LiveCollector`), so they are never stale. The registry is per app,
never prometheus_client's global one: two services in one process (the tests) never mix.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import falcon
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from robocall.dispatch.dispatcher import LineReport
from robocall.errors import RobocallError
from robocall.flow.actions import StepResult
from robocall.store.records import CallStatus, CallTicket

log = logging.getLogger(__name__)

# From a few milliseconds (an event-driven redial) up to the 1 s safety tick and beyond.
DISPATCH_DELAY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class CallMetrics:
    """A call observer that counts dials, answers, steps and outcomes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dials = Counter(
            "robocall_dials", "Originates sent, per organization.",
            ["organization"], registry=registry,
        )
        self.answered = Counter(
            "robocall_calls_answered", "Calls the callee answered, per organization.",
            ["organization"], registry=registry,
        )
        self.steps = Counter(
            "robocall_call_steps", "Call-flow steps run, by step name and step status.",
            ["step", "status"], registry=registry,
        )
        self.ended = Counter(
            "robocall_calls_ended",
            "Calls that ended, by final status and FreeSWITCH hangup cause.",
            ["organization", "status", "hangup_cause"], registry=registry,
        )
        self.verdicts = Counter(
            "robocall_amd_verdicts",
            "Answering-machine detection verdicts, by who answered (human, machine, unknown).",
            ["organization", "answered_by"], registry=registry,
        )
        self.requests_completed = Counter(
            "robocall_requests_completed", "Requests whose every call is final.",
            ["organization"], registry=registry,
        )

    def call_dialing(self, ticket: CallTicket) -> None:
        self.dials.labels(ticket.organization_id).inc()

    def call_answered(self, ticket: CallTicket) -> None:
        self.answered.labels(ticket.organization_id).inc()

    def call_answered_by(self, ticket: CallTicket, answered_by: str, after_ms: int) -> None:
        self.verdicts.labels(ticket.organization_id, answered_by).inc()

    def call_step(self, ticket: CallTicket, result: StepResult) -> None:
        if result.final:  # a running transfer is counted once, when it ends
            self.steps.labels(result.step_name.value, result.status.value).inc()

    def call_ended(
        self,
        ticket: CallTicket,
        status: CallStatus,
        hangup_cause: str,
        duration_seconds: float | None,
    ) -> None:
        self.ended.labels(ticket.organization_id, status.value, hangup_cause or "NONE").inc()

    def request_completed(self, ticket: CallTicket) -> None:
        self.requests_completed.labels(ticket.organization_id).inc()


class DispatchTimer:
    """Measures hangup seen -> next originate, per organization.

    Each released line is a moment waiting for its reuse; the next dispatch for that
    organization takes the oldest waiting moment and observes the delay. When the dispatcher
    finds the queue empty, the waiting moments are dropped: a line nobody needed was not slow
    to be reused.
    """

    def __init__(
        self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.delay = Histogram(
            "robocall_dispatch_delay_seconds",
            "From a released line seen on the event stream to the next originate handed over.",
            buckets=DISPATCH_DELAY_BUCKETS, registry=registry,
        )
        self._clock = clock
        self._freed: dict[str, deque[float]] = defaultdict(deque)

    def line_freed(self, organization_id: str) -> None:
        self._freed[organization_id].append(self._clock())

    def dispatched(self, organization_id: str, call_id: int) -> None:
        waiting = self._freed.get(organization_id)
        if waiting:
            self.delay.observe(self._clock() - waiting.popleft())

    def queue_drained(self, organization_id: str) -> None:
        self._freed.pop(organization_id, None)


@dataclass(frozen=True)
class SwitchReading:
    """One switch of the pool as robocall sees it now (read at scrape time)."""

    name: str
    connected: bool
    sessions: int  # its sessions in use or about to be, any owner (PoolMember.sessions_used)
    sessions_cap: int  # the most robocall lets it carry (from its Max-Sessions)
    idle_cpu: float | None  # its machine's idle CPU from a recent HEARTBEAT
    rate_factor: float  # the share of its dial pace robocall uses now (docs/reliability.md)


class LiveCollector(Collector):
    """Gauges read at scrape time from the dispatcher, the store and the switch connection."""

    def __init__(
        self,
        *,
        line_reports: Callable[[], Mapping[str, LineReport]],
        queued_calls: Callable[[], Mapping[str, int]],
        switch_connected: Callable[[], bool],
        switches: Callable[[], Iterable[SwitchReading]] = tuple,
    ) -> None:
        self._line_reports = line_reports
        self._queued_calls = queued_calls
        self._switch_connected = switch_connected
        self._switches = switches

    def collect(self) -> Iterator[Metric]:
        reports = self._line_reports()
        capacity = GaugeMetricFamily(
            "robocall_lines", "The organization's lines (maxConcurrentCalls).",
            labels=["organization"],
        )
        in_use = GaugeMetricFamily(
            "robocall_lines_in_use",
            "Lines in use now: origin robo (robocall's calls) or other (the organization's "
            "calls from other apps).",
            labels=["organization", "origin"],
        )
        in_flight = GaugeMetricFamily(
            "robocall_dials_in_flight", "Originates sent whose channel is not seen yet.",
            labels=["organization"],
        )
        free = GaugeMetricFamily(
            "robocall_lines_free", "Lines robocall may dial on now.", labels=["organization"]
        )
        for organization_id, report in sorted(reports.items()):
            capacity.add_metric([organization_id], report.lines)
            in_use.add_metric([organization_id, "robo"], report.robo)
            in_use.add_metric([organization_id, "other"], report.other)
            in_flight.add_metric([organization_id], report.in_flight)
            free.add_metric([organization_id], report.free)
        yield from (capacity, in_use, in_flight, free)
        queue = self._queue_depth(reports)
        if queue is not None:
            yield queue
        yield GaugeMetricFamily(
            "robocall_esl_connected",
            "1 while the Event Socket connection to FreeSWITCH is up, else 0.",
            value=1 if self._switch_connected() else 0,
        )
        yield from self._switch_gauges()

    def _switch_gauges(self) -> Iterator[GaugeMetricFamily]:
        """Per switch: whether robocall reaches it, how loaded it is, how fast robocall dials
        it now — what tells an admin which switch of a pool holds dialling back."""
        connected = GaugeMetricFamily(
            "robocall_switch_connected", "1 while this switch's Event Socket is up, else 0.",
            labels=["switch"],
        )
        sessions = GaugeMetricFamily(
            "robocall_switch_sessions",
            "Sessions in use on the switch, whoever made them (the channels robocall knows of or "
            "its HEARTBEAT's Session-Count, whichever is more), and robocall's dials in flight.",
            labels=["switch"],
        )
        cap = GaugeMetricFamily(
            "robocall_switch_sessions_cap",
            "The most sessions robocall lets the switch carry (from its Max-Sessions).",
            labels=["switch"],
        )
        idle = GaugeMetricFamily(
            "robocall_switch_idle_cpu_percent",
            "The switch machine's idle CPU from its last HEARTBEAT (absent when none is recent).",
            labels=["switch"],
        )
        factor = GaugeMetricFamily(
            "robocall_switch_dial_rate_factor",
            "The share of its dial pace robocall uses on the switch now (1: full pace; lower "
            "while the switch is late).",
            labels=["switch"],
        )
        for reading in self._switches():
            connected.add_metric([reading.name], 1 if reading.connected else 0)
            sessions.add_metric([reading.name], reading.sessions)
            cap.add_metric([reading.name], reading.sessions_cap)
            if reading.idle_cpu is not None:
                idle.add_metric([reading.name], reading.idle_cpu)
            factor.add_metric([reading.name], reading.rate_factor)
        yield from (connected, sessions, cap, idle, factor)

    def _queue_depth(self, reports: Mapping[str, LineReport]) -> GaugeMetricFamily | None:
        try:
            queued = self._queued_calls()
        except RobocallError as err:
            # The other gauges still tell an admin something while the database is away.
            log.warning("metrics: could not count queued calls: %s", err)
            return None
        queue = GaugeMetricFamily(
            "robocall_queue_depth", "Calls waiting to be dialled.", labels=["organization"]
        )
        for organization_id in sorted(set(reports) | set(queued)):
            queue.add_metric([organization_id], queued.get(organization_id, 0))
        return queue


class MetricsResource:
    """``GET /metrics``: the registry in Prometheus' text format (no API key; see docs)."""

    public = True

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = generate_latest(self.registry)
        resp.content_type = CONTENT_TYPE_LATEST

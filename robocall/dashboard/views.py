"""What the dashboard's pages show, as plain values: pure functions, no I/O, no HTML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from robocall.api import contract
from robocall.dispatch.dispatcher import LineReport
from robocall.flow.actions import StepResult
from robocall.flow.status import (
    FINAL_CALL_STATUSES,
    CallStatus,
    Leg,
    RequestStatus,
    StepStatus,
)

# The order a progress bar is drawn in: what is done first, what waits last.
STATUS_ORDER = (
    CallStatus.COMPLETED,
    CallStatus.FAILED,
    CallStatus.CANCELLED,
    CallStatus.ON_PROGRESS,
    CallStatus.DIALING,
    CallStatus.QUEUED,
)
LIVE_REQUEST_STATUSES = frozenset({RequestStatus.SUBMITTED, RequestStatus.ON_PROGRESS})


@dataclass(frozen=True)
class Segment:
    """One coloured part of a bar: what it counts, how many, and its share in percent."""

    name: str
    count: int
    percent: float


@dataclass(frozen=True)
class Progress:
    """A request's calls as a bar: a segment per status, and how many are final."""

    segments: list[Segment]
    total: int
    final: int

    @property
    def percent_final(self) -> int:
        return int(100 * self.final / self.total) if self.total else 100


@dataclass(frozen=True)
class Gauge:
    """The organization's lines as a bar: robo, other apps, dials in flight, free."""

    lines: int
    segments: list[Segment]
    known: bool  # False when the dispatcher does not (yet) know the organization


def progress(counts: Mapping[CallStatus, int], total: int) -> Progress:
    """The bar of a request with ``counts`` per call status out of ``total`` calls; segments
    are named as the API names the statuses."""
    scale = max(total, sum(counts.values()), 1)
    segments = [
        Segment(contract.CALL_STATUS[status], counts[status], 100 * counts[status] / scale)
        for status in STATUS_ORDER
        if counts.get(status)
    ]
    final = sum(counts.get(status, 0) for status in FINAL_CALL_STATUSES)
    return Progress(segments, total, final)


def gauge(report: LineReport | None) -> Gauge:
    """The lines bar. Other apps may hold more lines than the organization has; the bar then
    scales to what is in use, so it never draws past its end."""
    if report is None:
        return Gauge(0, [], known=False)
    parts = (
        ("robo", report.robo),
        ("other", report.other),
        ("in_flight", report.in_flight),
        ("free", report.free),
    )
    scale = max(report.lines, report.robo + report.other + report.in_flight + report.free, 1)
    return Gauge(report.lines, [Segment(n, c, 100 * c / scale) for n, c in parts], known=True)


def step_line(result: StepResult) -> str:
    """One step of a call in words, as the API reports it, e.g. ``gather: sucess_ok,
    pressed 1``."""
    entry = contract.step_entry(result)
    info = entry["info"]
    words = [info["status"] or info["call_status"]]
    if info["userPressedDigits"]:
        words.append(f"pressed {info['userPressedDigits']}")
    if info["transfer_status"]:
        words.append(f"transfer {info['transfer_status']}")
    if result.status is StepStatus.ERROR_NOT_ANSWERED:
        words.append(info["call_status"])
    return f"{entry['stepName']}: {', '.join(w for w in words if w)}"


def call_status_name(status: CallStatus) -> str:
    """A call's status as the API names it."""
    return contract.CALL_STATUS[status]


def request_status_name(status: RequestStatus) -> str:
    """A request's status as the API names it."""
    return contract.REQUEST_STATUS[status]


def leg_kind_name(leg: Leg) -> str:
    """A leg's kind as the API's ``monitorData`` names it."""
    return contract.LEG_KIND[leg.kind]

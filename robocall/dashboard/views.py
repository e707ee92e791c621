"""What the dashboard's pages show, as plain values: pure functions, no I/O, no HTML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robocall.dispatch.dispatcher import LineReport
from robocall.store.records import CallStatus, RequestStatus

# The order a progress bar is drawn in: what is done first, what waits last.
STATUS_ORDER = (
    CallStatus.COMPLETED.value,
    CallStatus.FAILED.value,
    CallStatus.CANCELLED.value,
    CallStatus.ON_PROGRESS.value,
    CallStatus.DIALING.value,
    CallStatus.QUEUED.value,
)
FINAL_CALL_STATUSES = frozenset(
    {CallStatus.COMPLETED.value, CallStatus.FAILED.value, CallStatus.CANCELLED.value}
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


def progress(counts: Mapping[str, int], total: int) -> Progress:
    """The bar of a request with ``counts`` per call status out of ``total`` calls."""
    scale = max(total, sum(counts.values()), 1)
    segments = [
        Segment(status, counts[status], 100 * counts[status] / scale)
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


def step_line(entry: Mapping[str, Any]) -> str:
    """One ``callFlowSteps`` entry in words, e.g. ``gather: success_ok, pressed 1``."""
    info = entry.get("info") or {}
    words = [str(info.get("status") or info.get("call_status") or "")]
    digits = info.get("userPressedDigits")
    if digits:
        words.append(f"pressed {digits}")
    transfer = info.get("transfer_status")
    if transfer:
        words.append(f"transfer {transfer}")
    return f"{entry.get('stepName', '?')}: {', '.join(w for w in words if w)}"

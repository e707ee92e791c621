"""What the terminal shows of a request: live progress while calls run, then a table per call.

Rendering uses rich; the pure parts (what a call's row says, how counts read) are plain
functions so they are testable without a terminal.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import gevent
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from robocall.api import contract
from robocall.client import FINAL_CALL_STATUSES, FINAL_REQUEST_STATUSES
from robocall.flow.status import CallStatus

# The order statuses are listed in, from waiting to done.
STATUS_ORDER = tuple(contract.CALL_STATUS.values())
STATUS_STYLES = {
    contract.CALL_STATUS[status]: style
    for status, style in (
        (CallStatus.QUEUED, "dim"),
        (CallStatus.DIALING, "yellow"),
        (CallStatus.ON_PROGRESS, "cyan"),
        (CallStatus.COMPLETED, "green"),
        (CallStatus.FAILED, "red"),
        (CallStatus.CANCELLED, "magenta"),
    )
}
POLL_SECONDS = 0.5


def counts_text(counts: Mapping[str, int]) -> str:
    """``queued 2 · onProgress 1 · completed 3``: the non-zero counts in status order."""
    ordered = sorted(counts, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 99)
    return " · ".join(f"{status} {counts[status]}" for status in ordered if counts[status])


def finished_calls(counts: Mapping[str, int]) -> int:
    """How many calls are in a final status."""
    return sum(count for status, count in counts.items() if status in FINAL_CALL_STATUSES)


def is_final(status: Mapping[str, Any]) -> bool:
    """Whether a request's status page says it is over."""
    return status.get("status") in FINAL_REQUEST_STATUSES


def watch(
    fetch: Callable[[], dict[str, Any]],
    console: Console,
    *,
    poll_seconds: float = POLL_SECONDS,
    give_up_after: float | None = None,
) -> dict[str, Any]:
    """Poll ``fetch`` (a request's status page) showing a progress bar until it is final.

    Returns the last page fetched: final, or the one seen when ``give_up_after`` seconds ran
    out (None: wait as long as it takes; Ctrl-C stops the watch, not the calls). Without a
    terminal (piped, CI logs) a progress bar would print nothing until the end, so it prints
    one :func:`summary_line` per change instead.
    """
    pages = _pages(fetch, poll_seconds, give_up_after)
    if not console.is_terminal:
        return _print_changes(pages, console)
    first = next(pages)
    columns = (
        TextColumn("[bold]{task.fields[request_id]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(
            counts_text(first["counts"]),
            total=first["total"],
            request_id=first["requestId"],
        )
        for status in itertools.chain([first], pages):
            progress.update(
                task,
                completed=finished_calls(status["counts"]),
                description=counts_text(status["counts"]),
            )
    return status


def _print_changes(pages: Iterator[dict[str, Any]], console: Console) -> dict[str, Any]:
    """One :func:`summary_line` for each page that reads differently from the one before."""
    printed = None
    for status in pages:
        line = summary_line(status)
        if line != printed:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
            console.file.flush()  # a pipe is block-buffered: show each change as it happens
            printed = line
    return status


def _pages(
    fetch: Callable[[], dict[str, Any]], poll_seconds: float, give_up_after: float | None
) -> Iterator[dict[str, Any]]:
    """Status pages every ``poll_seconds``, up to a final one (or the one fetched when
    ``give_up_after`` seconds ran out)."""
    started = time.monotonic()
    while True:
        status = fetch()
        yield status
        if is_final(status):
            return
        if give_up_after is not None and time.monotonic() - started > give_up_after:
            return
        gevent.sleep(poll_seconds)


def call_row(detail: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    """(destination, status, digits pressed, transfer status, duration, hangup cause)."""
    infos = [step.get("info", {}) for step in detail.get("callFlowSteps") or ()]
    pressed = [info.get("userPressedDigits", "") for info in infos]
    transfers = [info.get("transfer_status", "") for info in infos if info.get("transfer_status")]
    duration = detail.get("durationSeconds")
    return (
        str(detail.get("destination", "")),
        str(detail.get("status", "")),
        " ".join(p for p in pressed if p) or "-",
        transfers[-1] if transfers else "-",
        f"{duration:.1f} s" if isinstance(duration, int | float) else "-",
        str(detail.get("hangupCause") or "-"),
    )


def calls_table(details: Iterable[Mapping[str, Any]], title: str | None = None) -> Table:
    """A rich table with one row per call."""
    table = Table(title=title)
    for header in ("destination", "status", "digits", "transfer", "duration", "hangup cause"):
        table.add_column(header, justify="right" if header == "duration" else "left")
    for detail in details:
        row = call_row(detail)
        style = STATUS_STYLES.get(row[1], "")
        table.add_row(row[0], f"[{style}]{row[1]}[/]" if style else row[1], *row[2:])
    return table


def summary_line(status: Mapping[str, Any]) -> str:
    """``request_10 completed: 6 calls (completed 4 · failed 2)``."""
    return (
        f"{status['requestId']} {status['status']}: {status['total']} calls "
        f"({counts_text(status['counts'])})"
    )

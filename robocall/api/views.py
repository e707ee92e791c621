"""Status pages as the contract's JSON, and the opaque paging cursor. Pure functions."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from robocall.errors import InputError
from robocall.store.records import CallRecord, LineCounts, Organization, StatusPage

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_CURSOR_PREFIX = "call:"


def status_body(page: StatusPage) -> dict[str, Any]:
    """The ``GET /v1/status`` (and ``POST /v1/call``) answer for one page."""
    return {
        "requestId": page.request.request_id,
        "status": page.request.status.value,
        "details": [call_detail(call) for call in page.calls],
        "counts": dict(page.counts),
        "total": page.request.total,
        "nextCursor": encode_cursor(page.next_after_id) if page.next_after_id else None,
    }


def call_detail(call: CallRecord) -> dict[str, Any]:
    """One call as the seed's ``details[]`` entry, plus robocall's extensions."""
    return {
        "requestId": call.request_id,
        "callId": str(call.id),
        "caller": call.caller,
        "destination": call.phone,
        "status": call.status.value,
        "callFlowSteps": call.steps,
        "monitorData": call.monitor,
        "hangupCause": call.hangup_cause,
        "answeredAt": _iso(call.answered_at),
        "durationSeconds": call.duration_seconds,
        "attempt": call.attempt,
        "nextAttemptAt": _iso(call.next_attempt_at),
        **(
            {"answeredBy": call.answered_by, "answeredByMs": call.answered_by_ms}
            if call.answered_by is not None
            else {}
        ),
    }


def lines_body(organization: Organization, counts: LineCounts, report: Any | None
               ) -> dict[str, Any]:
    """The ``GET /v1/lines`` answer: from the dialer's ``report`` (a ``LineReport``) when this
    process dials, else from the store alone (what the switch sees is then unknown: null)."""
    if report is not None:
        return {
            "maxConcurrentCalls": report.lines,
            "cps": organization.cps,
            "busyFromOtherApps": report.other,
            "roboCallsLive": report.robo,
            "dialsInFlight": report.in_flight,
            "free": report.free,
            "queued": counts.queued,
        }
    return {
        "maxConcurrentCalls": organization.max_concurrent_calls,
        "cps": organization.cps,
        "busyFromOtherApps": None,
        "roboCallsLive": counts.live,
        "dialsInFlight": None,
        "free": max(0, organization.max_concurrent_calls - counts.live),
        "queued": counts.queued,
    }


def encode_cursor(after_call_id: int) -> str:
    """An opaque cursor for the page after the call ``after_call_id``."""
    raw = f"{_CURSOR_PREFIX}{after_call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The call id a cursor from :func:`encode_cursor` continues after; InputError if forged."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as err:
        raise InputError("cursor", "is not a cursor this API gave out") from err
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit() or len(number) > 18:
        raise InputError("cursor", "is not a cursor this API gave out")
    return int(number)


def page_limit(raw: str | None) -> int:
    """The ``limit`` query parameter as a page size (default 100, 1 to 1000)."""
    if raw is None:
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_PAGE:
        raise InputError("limit", f"must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")

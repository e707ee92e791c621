"""The lines report as JSON, and the opaque paging cursor with its query parameters. Pure
functions (a request's status is ``robocall.api.contract``'s)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from robocall.errors import InputError
from robocall.store.records import LineCounts, Organization

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_CURSOR_PREFIX = "call:"


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

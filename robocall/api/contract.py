"""The B3 "Robo call API" wire format: the one module that turns robocall's typed values into
the JSON a client reads — the status, the ``POST /v1/call`` answer, webhook events and the
dashboard's step lines all come through here.

Every string a client compares (``onProgress``, ``sucess_ok`` spelled as the B3 contract spells
it, ``no_answer``...) is in the tables below and nowhere else in robocall; the enums of
``robocall.flow.status`` are what the rest of the code and the store speak. A change of the
wire format is a change of this file (and of ``openapi.json``, which documents it: a test holds
the two to each other). Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from robocall.api.views import encode_cursor
from robocall.flow.actions import StepResult
from robocall.flow.status import (
    CallState,
    CallStatus,
    DialResult,
    Leg,
    LegKind,
    RequestStatus,
    StepName,
    StepStatus,
)
from robocall.store.records import CallRecord, RequestRecord, StatusPage

REQUEST_STATUS: Mapping[RequestStatus, str] = MappingProxyType({
    RequestStatus.SUBMITTED: "submitted",
    RequestStatus.ON_PROGRESS: "onProgress",
    RequestStatus.COMPLETED: "completed",
    RequestStatus.CANCELLED: "cancelled",
})
CALL_STATUS: Mapping[CallStatus, str] = MappingProxyType({
    CallStatus.QUEUED: "queued",
    CallStatus.DIALING: "dialing",
    CallStatus.ON_PROGRESS: "onProgress",
    CallStatus.COMPLETED: "completed",
    CallStatus.FAILED: "failed",
    CallStatus.CANCELLED: "cancelled",
})
DIAL_RESULT: Mapping[DialResult, str] = MappingProxyType({
    DialResult.ANSWERED: "answered",
    DialResult.BUSY: "busy",
    DialResult.NO_ANSWER: "no_answer",
    DialResult.FAILED: "failed",
})
STEP_NAME: Mapping[StepName, str] = MappingProxyType({
    StepName.PLAY: "play",
    StepName.GATHER: "gather",
    StepName.TRANSFER: "transfer",
})
CALL_STATE: Mapping[CallState, str] = MappingProxyType({
    CallState.ONGOING: "ongoing",
    CallState.ENDED: "ended",
})
STEP_STATUS: Mapping[StepStatus, str] = MappingProxyType({
    StepStatus.RUNNING: "",  # a transfer still running has no outcome yet
    StepStatus.SUCCESS_OK: "sucess_ok",  # sic: the B3 contract's spelling
    StepStatus.ERROR_NO_INPUT: "error_no_input",
    StepStatus.ERROR_INVALID_INPUT: "error_invalid_input",
    StepStatus.ERROR_HANGUP: "error_hangup",
    StepStatus.ERROR_PLAYBACK: "error_playback",
    StepStatus.ERROR_TRANSFER_FAILED: "error_transfer_failed",
    StepStatus.ERROR_NOT_ANSWERED: "error_not_answered",
})
LEG_KIND: Mapping[LegKind, str] = MappingProxyType({
    LegKind.CALL: "call",
    LegKind.TRANSFER: "transfer",
})
NOT_APPLICABLE = ""  # an ``info`` key that does not apply to the step (always present)

FINAL_REQUEST_STATUSES = frozenset(
    REQUEST_STATUS[s] for s in (RequestStatus.COMPLETED, RequestStatus.CANCELLED)
)
FINAL_CALL_STATUSES = frozenset(
    CALL_STATUS[s] for s in (CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELLED)
)

# Calls serialized per chunk of a streamed status: one keyset page of the store.
STREAM_PAGE = 500


def step_entry(result: StepResult) -> dict[str, Any]:
    """One ``callFlowSteps`` entry: ``stepName`` and the five keys of the contract's ``info``."""
    transfer = result.transfer_status
    return {
        "stepName": STEP_NAME[result.step_name],
        "info": {
            "call_state": CALL_STATE[result.call_state],
            "call_status": DIAL_RESULT[result.call_status],
            "status": STEP_STATUS[result.status],
            "userPressedDigits": result.user_pressed_digits or NOT_APPLICABLE,
            "transfer_status": DIAL_RESULT[transfer] if transfer else NOT_APPLICABLE,
        },
    }


def leg_entry(leg: Leg) -> dict[str, str]:
    """One ``monitorData`` entry."""
    entry = {"uuid": leg.uuid, "type": LEG_KIND[leg.kind], "dest": leg.dest}
    if leg.switch:  # extension: which FreeSWITCH of a pool to uuid_dump it on
        entry["switch"] = leg.switch
    return entry


def call_detail(call: CallRecord) -> dict[str, Any]:
    """One call as the contract's ``details[]`` entry, plus robocall's extensions."""
    return {
        "requestId": call.request_id,
        "callId": str(call.id),
        "caller": call.caller,
        "destination": call.phone,
        "status": CALL_STATUS[call.status],
        "callFlowSteps": [step_entry(step) for step in call.steps],
        "monitorData": [leg_entry(leg) for leg in call.monitor],
        "hangupCause": call.hangup_cause,
        "answeredAt": iso(call.answered_at),
        "durationSeconds": call.duration_seconds,
        "attempt": call.attempt,
        "nextAttemptAt": iso(call.next_attempt_at),
        **(
            {"answeredBy": call.answered_by, "answeredByMs": call.answered_by_ms}
            if call.answered_by is not None
            else {}
        ),
        **({"switch": call.switch} if call.switch else {}),
    }


def counts_body(counts: Mapping[CallStatus, int]) -> dict[str, int]:
    """How many calls are in each status, by the status's wire name (none: left out)."""
    return {CALL_STATUS[status]: count for status, count in counts.items() if count}


def status_body(page: StatusPage) -> dict[str, Any]:
    """A request's status with one page of its calls (``POST /v1/call``'s answer, the cancel's,
    and ``GET /v1/status`` when paged); ``nextCursor`` continues after the page."""
    after = page.next_after_id
    return {
        **_request_head(page.request, page.counts),
        "details": [call_detail(call) for call in page.calls],
        "nextCursor": encode_cursor(after) if after is not None else None,
    }


def status_stream(
    request: RequestRecord, counts: Mapping[CallStatus, int], pages: Iterable[list[CallRecord]]
) -> Iterator[bytes]:
    """A request's status with every one of its calls, as JSON text in pieces: the head, then
    one piece per page of calls. Memory stays one page whatever the number of calls."""
    head = orjson.dumps({**_request_head(request, counts), "nextCursor": None})
    yield head[:-1] + b',"details":['
    first = True
    for calls in pages:
        if not calls:
            continue
        text = orjson.dumps([call_detail(call) for call in calls])[1:-1]
        yield text if first else b"," + text
        first = False
    yield b"]}"


def webhook_step(result: StepResult) -> dict[str, Any]:
    """The detail of a ``call.step`` webhook event."""
    return {"status": CALL_STATUS[CallStatus.ON_PROGRESS], "step": step_entry(result)}


def webhook_call_status(status: CallStatus) -> str:
    """A call's status as webhook events carry it."""
    return CALL_STATUS[status]


def webhook_request_completed(page: StatusPage) -> dict[str, Any]:
    """The detail of a ``request.completed`` webhook event."""
    return {
        "status": REQUEST_STATUS[page.request.status],
        "counts": counts_body(page.counts),
        "total": page.request.total,
    }


def iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) moment as ISO-8601 with a ``Z``."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _request_head(request: RequestRecord, counts: Mapping[CallStatus, int]) -> dict[str, Any]:
    return {
        "requestId": request.request_id,
        "status": REQUEST_STATUS[request.status],
        "counts": counts_body(counts),
        "total": request.total,
    }

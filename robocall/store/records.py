"""What the store hands out: plain frozen values, never live model rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from robocall.flow.actions import StepResult
from robocall.flow.status import CallStatus as CallStatus  # re-exported to the store's callers
from robocall.flow.status import Leg
from robocall.flow.status import RequestStatus as RequestStatus


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    max_concurrent_calls: int
    cps: float
    line_variable: str
    line_value: str


@dataclass(frozen=True)
class RequestRecord:
    seq: int  # the submission sequence (FIFO order across requests)
    org_id: str
    request_id: str
    body_hash: str
    status: RequestStatus
    total: int
    enable_call_recording: bool
    created_at: datetime
    cancelled_at: datetime | None = None  # when the client cancelled it (extension)


@dataclass(frozen=True)
class CallRecord:
    id: int
    request_id: str
    position: int
    phone: str
    caller: str
    status: CallStatus
    hangup_cause: str | None
    answered_at: datetime | None
    duration_seconds: float | None
    steps: tuple[StepResult, ...]  # the step report, in order (store.call_report)
    monitor: tuple[Leg, ...]  # the call's FreeSWITCH legs
    attempt: int = 0  # attempts made so far (retry policy, extension)
    next_attempt_at: datetime | None = None  # not dialled before (backoff, calling window)
    answered_by: str | None = None  # answering-machine detection's verdict (extension)
    answered_by_ms: int | None = None  # ms from the answer to the verdict
    switch: str | None = None  # the pool's switch it was placed on (extension)


@dataclass(frozen=True)
class LineCounts:
    """An organization's calls as the store counts them: queued, and live (dialing or
    answered) on any robocall node."""

    queued: int
    live: int


@dataclass(frozen=True)
class StatusPage:
    """A request, its call counts per status, and one page of its calls."""

    request: RequestRecord
    counts: Mapping[CallStatus, int]
    calls: list[CallRecord] = field(default_factory=list)
    next_after_id: int | None = None  # the last call id of this page if more follow


# --- what the dispatcher claims and the call runner runs ------------------------------------


@dataclass(frozen=True)
class OrganizationLines:
    """An organization as the dispatcher needs it: its lines, its pace, and which channels are
    its lines (those whose channel variable ``line_variable`` equals ``line_value``)."""

    id: str
    max_concurrent_calls: int
    cps: float
    line_variable: str
    line_value: str


@dataclass(frozen=True)
class CallTicket:
    """One call claimed for dialing: committed as ``dialing`` before it is dialled."""

    call_id: int
    request_id: str  # the client's requestId
    organization_id: str
    phone: str
    caller: str
    properties: Mapping[str, str]
    channel_uuid: str  # origination_uuid, chosen and stored before the originate is sent
    line_variable: tuple[str, str]  # marks the channel as one of the organization's lines
    record: bool
    switch: str = ""  # the pool's switch the call is placed on ("": the only one)


@dataclass(frozen=True)
class ClaimedCall:
    """A claimed call with what its request's flow needs."""

    ticket: CallTicket
    request_seq: int
    call_flow_json: str
    machine_detection_json: str | None = None  # the request's machineDetection, if any


@dataclass(frozen=True)
class QueuedCall:
    """A queued call as the first-message prefetcher sees it, before anyone claims it."""

    call_id: int
    request_seq: int
    call_flow_json: str
    properties: Mapping[str, str]

"""Webhooks, the pure part and the outbox writer: what an event looks like, how it is signed,
and a :class:`CallObserver` that turns each moment of a call into an outbox row.

Events are written to the durable outbox (``store.webhooks``) in the call's greenlet and sent
later by ``calls.webhook_delivery``: a slow or dead receiver never holds up a call, and a
restart loses no event. Bodies are fixed when the event happens; the signature is made per
attempt, with that attempt's timestamp, so a receiver can refuse stale replays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from robocall.api import contract
from robocall.flow.actions import StepResult
from robocall.flow.status import CallStatus
from robocall.store.records import CallTicket
from robocall.store.repo import Repo

log = logging.getLogger(__name__)

EVENT_HEADER = "X-Robocall-Event"
EVENT_ID_HEADER = "X-Robocall-Event-Id"
TIMESTAMP_HEADER = "X-Robocall-Timestamp"
SIGNATURE_HEADER = "X-Robocall-Signature"
SIGNATURE_VERSION = "v1"

CALL_DIALING = "call.dialing"
CALL_ANSWERED = "call.answered"
CALL_STEP = "call.step"
CALL_ANSWERED_BY = "call.answered_by"
CALL_COMPLETED = "call.completed"
CALL_FAILED = "call.failed"
REQUEST_COMPLETED = "request.completed"

TARGET_CACHE_SIZE = 1024  # requests whose callback URL (or its absence) is remembered


def new_webhook_secret() -> str:
    """A fresh signing secret: 256 random bits, URL-safe."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``v1=`` + HMAC-SHA256(secret, "<timestamp>.<body>") hex."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def backoff_seconds(attempts_made: int, base_seconds: float) -> float:
    """How long to wait after the ``attempts_made``-th failed attempt: base, 2x base, 4x..."""
    return float(base_seconds * 2.0 ** max(0, attempts_made - 1))


def redact_url(url: str) -> str:
    """``url`` fit for logs and the delivery log: no user:password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def event_body(
    event: str, ticket: CallTicket, at: datetime, event_id: str, **detail: Any
) -> bytes:
    """The JSON an event is sent as: who, what, when, and the moment's detail."""
    body: dict[str, Any] = {
        "eventId": event_id,
        "event": event,
        "requestId": ticket.request_id,
        "callId": str(ticket.call_id),
        "destination": ticket.phone,
        "caller": ticket.caller,
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    body.update(detail)
    return orjson.dumps(body)


class WebhookObserver:
    """Writes an outbox row for each moment of a call whose request has a ``callbackUrl``."""

    def __init__(
        self,
        repo: Repo,
        *,
        clock: Callable[[], float],
        wake: Callable[[], None] = lambda: None,
        new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._wake = wake
        self._new_event_id = new_event_id
        self._targets: OrderedDict[tuple[str, str], str | None] = OrderedDict()

    def call_dialing(self, ticket: CallTicket) -> None:
        self._emit(CALL_DIALING, ticket, status=contract.webhook_call_status(CallStatus.DIALING))

    def call_answered(self, ticket: CallTicket) -> None:
        self._emit(
            CALL_ANSWERED, ticket, status=contract.webhook_call_status(CallStatus.ON_PROGRESS)
        )

    def call_answered_by(self, ticket: CallTicket, answered_by: str, after_ms: int) -> None:
        self._emit(
            CALL_ANSWERED_BY, ticket, status=contract.webhook_call_status(CallStatus.ON_PROGRESS),
            answeredBy=answered_by, answeredByMs=after_ms,
        )

    def call_step(self, ticket: CallTicket, result: StepResult) -> None:
        self._emit(CALL_STEP, ticket, **contract.webhook_step(result))

    def call_ended(
        self,
        ticket: CallTicket,
        status: CallStatus,
        hangup_cause: str,
        duration_seconds: float | None,
    ) -> None:
        event = CALL_COMPLETED if status is CallStatus.COMPLETED else CALL_FAILED
        self._emit(
            event,
            ticket,
            status=contract.webhook_call_status(status),
            hangupCause=hangup_cause,
            durationSeconds=duration_seconds,
        )

    def request_completed(self, ticket: CallTicket) -> None:
        if self._url(ticket) is None:
            return
        page = self._repo.request_status(ticket.organization_id, ticket.request_id, limit=1)
        self._emit(REQUEST_COMPLETED, ticket, **contract.webhook_request_completed(page))

    def _emit(self, event: str, ticket: CallTicket, **detail: Any) -> None:
        url = self._url(ticket)
        if url is None:
            return
        at = datetime.fromtimestamp(self._clock(), UTC)
        event_id = self._new_event_id()
        body = event_body(event, ticket, at, event_id, **detail)
        self._repo.enqueue_webhook(
            ticket, event=event, event_id=event_id, url=url, body=body.decode(), at=at
        )
        self._wake()

    def _url(self, ticket: CallTicket) -> str | None:
        key = (ticket.organization_id, ticket.request_id)
        if key in self._targets:
            self._targets.move_to_end(key)
            return self._targets[key]
        target = self._repo.callback_target(*key)
        url = target.url if target is not None else None
        self._targets[key] = url
        if len(self._targets) > TARGET_CACHE_SIZE:
            self._targets.popitem(last=False)
        return url

"""The repository's webhook queries: callback URLs, signing secrets, the durable outbox.

Part of :class:`robocall.store.repo.Repo` (a mixin, as ``store.dialing`` is). Its three tables
(created by migration 4) are bound here rather than in ``store.models`` so the first
migration's ``create_tables`` never creates them too.

The outbox is the webhooks' source of truth: an event is a row before anyone tries to send it,
and a row leaves ``pending`` only when a receiver answered 2xx (``delivered``) or its attempts
ran out (``failed``). A worker leases a row before sending it, so two nodes on one PostgreSQL
never send the same attempt twice, and a node that died mid-send frees its rows when the lease
runs out.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from robocall.store.models import Tables
from robocall.store.records import CallTicket

MAX_ATTEMPT_LOG = 20  # attempts kept in a row's log (the attempts count has them all)


class OutboxStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class WebhookTables:
    """The webhook model classes of one database."""

    callback: Any
    secret: Any
    outbox: Any

    def all(self) -> list[type[peewee.Model]]:
        return [self.callback, self.secret, self.outbox]


def bind_webhook_models(database: peewee.Database) -> WebhookTables:
    """Model classes for ``database``'s webhook tables."""

    class Base(peewee.Model):
        class Meta:
            pass

    Base._meta.set_database(database)

    class RequestCallback(Base):
        # one row per request that asked for webhooks, written in the request's transaction
        request_seq = peewee.BigIntegerField(primary_key=True)
        url = peewee.TextField()

        class Meta:
            table_name = "request_callbacks"

    class WebhookSecret(Base):
        # kept as is, not hashed: an HMAC key must be usable to sign (docs/webhooks.md)
        org_id = peewee.CharField(primary_key=True, max_length=64)
        secret = peewee.CharField(max_length=128)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "webhook_secrets"

    class WebhookOutbox(Base):
        id = peewee.BigAutoField()
        org_id = peewee.CharField(max_length=64)
        request_id = peewee.CharField(max_length=200)
        call_id = peewee.BigIntegerField()  # events of one call are sent in id order
        event = peewee.CharField(max_length=32)
        event_id = peewee.CharField(max_length=64)
        url = peewee.TextField()
        body = peewee.TextField()  # the JSON sent, fixed when the event happened
        status = peewee.CharField(max_length=16)
        attempts = peewee.IntegerField(default=0)
        next_attempt_at = peewee.DateTimeField()
        lease_until = peewee.DateTimeField(null=True)
        last_http_status = peewee.IntegerField(null=True)
        last_error = peewee.TextField(null=True)
        attempt_log = peewee.TextField(default="[]")
        delivered_at = peewee.DateTimeField(null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "webhook_outbox"
            indexes = (
                # the worker's scan: pending rows, each call's oldest first
                (("status", "call_id", "id"), False),
                # the delivery log of one request, paged by id
                (("org_id", "request_id", "id"), False),
            )

    return WebhookTables(RequestCallback, WebhookSecret, WebhookOutbox)


@dataclass(frozen=True)
class CallbackTarget:
    """Where a request's events go."""

    request_seq: int
    url: str


@dataclass(frozen=True)
class OutboxRow:
    """One event to deliver (or delivered), as the worker and the delivery log see it."""

    id: int
    org_id: str
    request_id: str
    call_id: int
    event: str
    event_id: str
    url: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_http_status: int | None
    last_error: str | None
    attempt_log: list[dict[str, Any]]
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AttemptOutcome:
    """What one delivery attempt came to."""

    at: datetime
    http_status: int | None
    error: str | None
    delivered: bool
    next_attempt_at: datetime | None  # None: no further attempt (delivered, or given up)
    duration_ms: int | None = None  # connect to answer (or to the failure)


class WebhookQueries:
    """Webhook storage. Mixed into ``Repo``, which provides the plumbing below."""

    _db: peewee.Database
    _tables: Tables
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]
    _session: Callable[[], AbstractContextManager[None]]
    _webhook_tables_bound: WebhookTables | None = None

    @property
    def _webhooks(self) -> WebhookTables:
        if self._webhook_tables_bound is None:
            self._webhook_tables_bound = bind_webhook_models(self._db)
        return self._webhook_tables_bound

    # --- callback URLs and secrets -----------------------------------------------------------

    def _store_callback(self, request_seq: int, url: str | None) -> None:
        """Inside ``submit_request``'s transaction: remember where the request's events go."""
        if url is not None:
            self._webhooks.callback.insert(request_seq=request_seq, url=url).execute()

    def callback_target(self, org_id: str, request_id: str) -> CallbackTarget | None:
        """The request's callback URL, if it asked for webhooks."""
        callback, request = self._webhooks.callback, self._tables.call_request
        with self._session():
            row = (
                callback.select(callback.request_seq, callback.url)
                .join(request, on=(request.id == callback.request_seq))
                .where((request.organization == org_id) & (request.request_id == request_id))
                .first()
            )
        return CallbackTarget(row.request_seq, row.url) if row is not None else None

    def webhook_secret(self, org_id: str) -> str | None:
        """The organization's webhook signing secret, if it has one."""
        secret = self._webhooks.secret
        with self._session():
            value = secret.select(secret.secret).where(secret.org_id == org_id).scalar()
        return str(value) if value is not None else None

    def set_webhook_secret(self, org_id: str, value: str) -> None:
        """Give the organization ``value`` as its signing secret (replacing any other)."""
        secret = self._webhooks.secret
        with self._writing():
            secret.insert(org_id=org_id, secret=value, created_at=self._now()).on_conflict(
                conflict_target=[secret.org_id],
                update={secret.secret: value, secret.created_at: self._now()},
            ).execute()

    # --- the outbox --------------------------------------------------------------------------

    def enqueue_webhook(
        self, ticket: CallTicket, *, event: str, event_id: str, url: str, body: str, at: datetime
    ) -> None:
        """Add one event for ``ticket``'s call to the outbox, due at once."""
        outbox = self._webhooks.outbox
        stamp = _naive(at)
        # durable=False as the call's progress writes: a crash of robocall loses no commit
        with self._writing(durable=False):
            outbox.insert(
                org_id=ticket.organization_id,
                request_id=ticket.request_id,
                call_id=ticket.call_id,
                event=event,
                event_id=event_id,
                url=url,
                body=body,
                status=OutboxStatus.PENDING,
                next_attempt_at=stamp,
                created_at=stamp,
            ).execute()

    def due_webhooks(self, now: datetime, *, limit: int) -> list[OutboxRow]:
        """Pending rows due by ``now`` that head their call's queue (oldest first), unleased."""
        outbox = self._webhooks.outbox
        query = outbox.select().where(
            self._sendable(now) & (outbox.next_attempt_at <= _naive(now))
        )
        with self._session():
            return [_outbox_row(row) for row in query.order_by(outbox.id).limit(limit)]

    def next_webhook_due(self, now: datetime) -> datetime | None:
        """When the earliest row that could be sent (a head, unleased at ``now``) falls due."""
        outbox = self._webhooks.outbox
        with self._session():
            due = (
                outbox.select(peewee.fn.MIN(outbox.next_attempt_at))
                .where(self._sendable(now))
                .scalar()
            )
        if isinstance(due, str):  # SQLite hands back text for an aggregate
            due = datetime.fromisoformat(due)
        return due.replace(tzinfo=UTC) if due is not None else None

    def _sendable(self, now: datetime) -> Any:
        """Pending, not leased by a live worker, and no older pending event of its call."""
        outbox = self._webhooks.outbox
        earlier = outbox.alias("earlier")
        stamp = _naive(now)
        blocked = earlier.select(earlier.id).where(
            (earlier.call_id == outbox.call_id)
            & (earlier.status == OutboxStatus.PENDING)
            & (earlier.id < outbox.id)
        )
        return (
            (outbox.status == OutboxStatus.PENDING)
            & (outbox.lease_until.is_null() | (outbox.lease_until < stamp))
            & ~peewee.fn.EXISTS(blocked)
        )

    def lease_webhook(self, row_id: int, now: datetime, lease_seconds: float) -> bool:
        """Take row ``row_id`` for one attempt; False if another worker holds it."""
        outbox = self._webhooks.outbox
        stamp = _naive(now)
        with self._writing(durable=False):
            taken = (
                outbox.update(lease_until=stamp + timedelta(seconds=lease_seconds))
                .where(
                    (outbox.id == row_id)
                    & (outbox.status == OutboxStatus.PENDING)
                    & (outbox.lease_until.is_null() | (outbox.lease_until < stamp))
                )
                .execute()
            )
        return bool(taken)

    def release_webhooks(self, row_ids: Sequence[int]) -> None:
        """Give up the leases on ``row_ids`` (sends that were cut off): due again at once."""
        outbox = self._webhooks.outbox
        with self._writing(durable=False):
            outbox.update(lease_until=None).where(
                outbox.id.in_(list(row_ids)) & (outbox.status == OutboxStatus.PENDING)
            ).execute()

    def record_webhook_attempt(self, row_id: int, outcome: AttemptOutcome) -> None:
        """Log one attempt on the row: delivered, due again, or given up."""
        outbox = self._webhooks.outbox
        entry = {
            "at": _iso(outcome.at),
            "httpStatus": outcome.http_status,
            "error": outcome.error,
            "durationMs": outcome.duration_ms,
        }
        if outcome.delivered:
            status = OutboxStatus.DELIVERED
        elif outcome.next_attempt_at is None:
            status = OutboxStatus.FAILED
        else:
            status = OutboxStatus.PENDING
        with self._writing(durable=False):
            log_text = outbox.select(outbox.attempt_log).where(outbox.id == row_id).scalar()
            attempt_log = json.loads(log_text or "[]")[-(MAX_ATTEMPT_LOG - 1):] + [entry]
            changes: dict[Any, Any] = {
                outbox.status: status,
                outbox.attempts: outbox.attempts + 1,
                outbox.lease_until: None,
                outbox.last_http_status: outcome.http_status,
                outbox.last_error: outcome.error,
                outbox.attempt_log: json.dumps(attempt_log),
            }
            if outcome.delivered:
                changes[outbox.delivered_at] = _naive(outcome.at)
            if outcome.next_attempt_at is not None:
                changes[outbox.next_attempt_at] = _naive(outcome.next_attempt_at)
            outbox.update(changes).where(outbox.id == row_id).execute()

    def webhook_deliveries(
        self, org_id: str, *, request_id: str | None, limit: int, after_id: int | None = None
    ) -> tuple[list[OutboxRow], int | None]:
        """One page of the organization's delivery log (oldest first) and the id to go on
        after, if more follow."""
        outbox = self._webhooks.outbox
        query = outbox.select().where(outbox.org_id == org_id)
        if request_id is not None:
            query = query.where(outbox.request_id == request_id)
        if after_id is not None:
            query = query.where(outbox.id > after_id)
        with self._session():
            rows = [_outbox_row(row) for row in query.order_by(outbox.id).limit(limit + 1)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1].id if more and rows else None

    def prune_webhooks(self, created_before: datetime) -> int:
        """Delete the outbox rows (the delivery log) that are done with — delivered or given
        up — and were created before ``created_before``; how many went. Pending rows stay."""
        outbox = self._webhooks.outbox
        with self._writing(durable=False):
            return int(
                outbox.delete()
                .where(
                    outbox.status.in_((OutboxStatus.DELIVERED, OutboxStatus.FAILED))
                    & (outbox.created_at < _naive(created_before))
                )
                .execute()
            )


def scrub_receiver_text(database: peewee.Database) -> None:
    """Reduce every logged error that quoted what a receiver sent — ``HTTP 503: <its text>``,
    ``redirect to <its Location> not followed``, ``BadStatusLine: <its line>`` — to what
    robocall itself knows (the status, the kind of failure): migration 7."""
    outbox = bind_webhook_models(database).outbox
    quoted = outbox.select(
        outbox.id, outbox.last_error, outbox.last_http_status, outbox.attempt_log
    ).where(outbox.last_error.is_null(False) | outbox.attempt_log.contains('"error": "'))
    for row in quoted:
        attempt_log = json.loads(row.attempt_log or "[]")
        for entry in attempt_log:
            entry["error"] = _robocalls_own(entry.get("error"), entry.get("httpStatus"))
        outbox.update(
            last_error=_robocalls_own(row.last_error, row.last_http_status),
            attempt_log=json.dumps(attempt_log),
        ).where(outbox.id == row.id).execute()


_NOT_HTTP = tuple(
    name for name in dir(http.client)
    if isinstance(getattr(http.client, name), type)
    and issubclass(getattr(http.client, name), http.client.HTTPException)
)


def _robocalls_own(error: str | None, http_status: int | None) -> str | None:
    if error is None:
        return None
    if http_status is not None:
        return f"HTTP {http_status}"
    kind = error.split(":", 1)[0]
    if kind in _NOT_HTTP:
        return f"{kind}: the answer is not valid HTTP"
    return error


def _outbox_row(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        org_id=row.org_id,
        request_id=row.request_id,
        call_id=row.call_id,
        event=row.event,
        event_id=row.event_id,
        url=row.url,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_http_status=row.last_http_status,
        last_error=row.last_error,
        attempt_log=json.loads(row.attempt_log or "[]"),
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


def _naive(moment: datetime) -> datetime:
    # stored naive in UTC, as every timestamp of the store
    return moment.astimezone(UTC).replace(tzinfo=None)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

"""Sending webhooks: one bounded HTTP POST per attempt, and the worker that drains the outbox.

The worker is one greenlet over the database: it takes each call's oldest pending event that
is due (so a call's events arrive in order, and one dead receiver stalls only its own calls),
leases it, and sends it from a small pool. A failure is retried after an exponential backoff
until the attempts run out. Everything it needs is in the outbox, so a restarted process goes
on where the last one stopped.

The receiver's URL is client text, so a POST is kept on a short leash: http and https only,
redirects never followed (a 3xx is a failed attempt that says where it pointed), at most
``RESPONSE_READ_LIMIT`` bytes of the answer read, one deadline over connect, send and read, and
the URL logged without credentials or query.
"""

from __future__ import annotations

import base64
import http.client
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import gevent
import gevent.event
import gevent.pool

from robocall.calls.webhooks import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_seconds,
    redact_url,
    sign,
)
from robocall.errors import RobocallError
from robocall.store.repo import Repo
from robocall.store.webhooks import AttemptOutcome, OutboxRow

log = logging.getLogger(__name__)

RESPONSE_READ_LIMIT = 1024  # bytes of a receiver's answer read (a short error excerpt)
ERROR_EXCERPT_CHARS = 200
POLL_SECONDS = 1.0  # look for rows other nodes wrote, or whose backoff ran out, this often
LEASE_MARGIN_SECONDS = 30.0  # a lease outlives a delivery's deadline by this much
USER_AGENT = "robocall-webhooks/1"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: attempts per event, the first backoff, one attempt's deadline."""

    max_attempts: int = 8
    backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0
    concurrency: int = 8  # deliveries in flight at once (to different calls)


@dataclass(frozen=True)
class PostResult:
    """What one POST came to: the HTTP status if one came back, and why it failed if it did."""

    http_status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.http_status is not None and 200 <= self.http_status < 300


def post_webhook(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float
) -> PostResult:
    """POST ``body`` to ``url`` once, within ``timeout_seconds`` overall; never raises."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return PostResult(None, "not an http(s) URL")
    connection_class = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    if parts.username is not None:  # credentials in the URL: HTTP Basic, as curl does
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        sent_headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    connection = None
    try:
        with gevent.Timeout(timeout_seconds):
            connection = connection_class(parts.hostname, parts.port, timeout=timeout_seconds)
            connection.request("POST", target, body=body, headers=sent_headers)
            response = connection.getresponse()
            excerpt = response.read(RESPONSE_READ_LIMIT)
    except gevent.Timeout:
        return PostResult(None, f"no answer within {timeout_seconds:g} s")
    except (OSError, http.client.HTTPException) as err:
        return PostResult(None, f"{type(err).__name__}: {err}"[:ERROR_EXCERPT_CHARS])
    finally:
        if connection is not None:
            connection.close()
    status = response.status
    if 200 <= status < 300:
        return PostResult(status, None)
    if 300 <= status < 400:
        location = response.getheader("Location") or ""
        where = redact_url(location) if location else "nowhere"
        return PostResult(status, f"redirect to {where} not followed; use the final URL")
    text = excerpt.decode("utf-8", "replace")[:ERROR_EXCERPT_CHARS]
    return PostResult(status, f"HTTP {status}" + (f": {text}" if text else ""))


Poster = Callable[..., PostResult]


class WebhookWorker:
    """Drains the outbox in the background: ``start()``, ``wake()`` on a new row, ``stop()``."""

    def __init__(
        self,
        repo: Repo,
        policy: DeliveryPolicy,
        *,
        secret_for: Callable[[str], str],
        clock: Callable[[], float] = time.time,
        post: Poster = post_webhook,
    ) -> None:
        self._repo = repo
        self._policy = policy
        self._secret_for = secret_for
        self._clock = clock
        self._post = post
        self._pool = gevent.pool.Pool(policy.concurrency)
        self._wakeup = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self._leased: set[int] = set()  # rows this worker is sending

    def start(self) -> None:
        """Start draining: rows left pending by an earlier process are picked up too."""
        if self._greenlet is None:
            self._stopping = False
            self._greenlet = gevent.spawn(self._run)

    def wake(self) -> None:
        """Look at the outbox now (a row was added, or a delivery ended)."""
        self._wakeup.set()

    def stop(self, grace_seconds: float = 2.0) -> None:
        """Stop taking rows; give deliveries in flight ``grace_seconds`` to finish. A row cut
        off mid-send stays pending, its lease given back, and the next start sends it again."""
        self._stopping = True
        self.wake()
        if self._greenlet is not None:
            # the loop ends at its next wake-up; a kill inside a query would break the
            # connection, so it is only the last resort
            self._greenlet.join(timeout=grace_seconds)
            self._greenlet.kill()
            self._greenlet = None
        self._pool.join(timeout=grace_seconds)
        self._pool.kill()
        if self._leased:  # cut off mid-send: let the next start send them without waiting
            try:
                self._repo.release_webhooks(sorted(self._leased))
            except RobocallError as err:
                log.warning("webhooks: leases left to expire: %s", err)
            self._leased.clear()

    # --- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                self._send_due()
                wait = self._seconds_to_next_due()
            except RobocallError as err:
                log.warning("webhooks: cannot read the outbox: %s", err)
                wait = POLL_SECONDS
            except Exception:  # the worker outlives any one bad pass; the outbox keeps all
                log.exception("webhooks: the outbox pass failed")
                wait = POLL_SECONDS
            self._wakeup.wait(wait)

    def _send_due(self) -> None:
        free = self._pool.free_count()
        if free <= 0 or self._stopping:
            return
        now = self._now()
        lease = self._policy.timeout_seconds + LEASE_MARGIN_SECONDS
        for row in self._repo.due_webhooks(now, limit=free):
            if self._repo.lease_webhook(row.id, now, lease):
                self._leased.add(row.id)
                self._pool.spawn(self._deliver, row)

    def _seconds_to_next_due(self) -> float:
        if self._pool.full():
            return POLL_SECONDS  # a delivery that ends wakes the loop
        due = self._repo.next_webhook_due(self._now())
        if due is None:
            return POLL_SECONDS
        # a floor keeps a row another node holds from spinning this loop
        return min(POLL_SECONDS, max(0.01, (due - self._now()).total_seconds()))

    def _deliver(self, row: OutboxRow) -> None:
        try:
            self._attempt(row)
            self._leased.discard(row.id)
        except Exception:  # a greenlet's last resort: log it, the row's lease frees it later
            log.exception("webhooks: delivery of event %s failed unexpectedly", row.event_id)
        finally:
            self.wake()

    def _attempt(self, row: OutboxRow) -> None:
        body = row.body.encode("utf-8")
        timestamp = int(self._clock())
        headers = {
            EVENT_HEADER: row.event,
            EVENT_ID_HEADER: row.event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret_for(row.org_id), timestamp, body),
        }
        result = self._post(
            row.url, body, headers, timeout_seconds=self._policy.timeout_seconds
        )
        at = self._now()
        attempts = row.attempts + 1
        next_at: datetime | None = None
        if not result.delivered and attempts < self._policy.max_attempts:
            wait = backoff_seconds(attempts, self._policy.backoff_seconds)
            next_at = at + timedelta(seconds=wait)
        self._repo.record_webhook_attempt(
            row.id,
            AttemptOutcome(
                at=at,
                http_status=result.http_status,
                error=result.error,
                delivered=result.delivered,
                next_attempt_at=next_at,
            ),
        )
        if not result.delivered:
            log.info(
                "webhook %s of call %s to %s: attempt %d of %d failed (%s)%s",
                row.event, row.call_id, redact_url(row.url), attempts,
                self._policy.max_attempts, result.error,
                "" if next_at else "; giving up",
            )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

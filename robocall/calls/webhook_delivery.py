"""Sending webhooks: one bounded HTTP POST per attempt, and the worker that drains the outbox.

The worker is one greenlet over the database: it takes each call's oldest pending event that
is due (so a call's events arrive in order, and one dead receiver stalls only its own calls),
leases it, and sends it from a small pool. A failure is retried after an exponential backoff
until the attempts run out. Everything it needs is in the outbox, so a restarted process goes
on where the last one stopped.

The receiver's URL is client text, so a POST is kept on a short leash: http and https only,
the host vetted again just before connecting and the connection made to the vetted address
(``calls.webhook_targets``), redirects never followed (a 3xx is a failed attempt), the answer's
status kept and nothing else of it (its body is never read, its headers never logged: what an
address answers is not handed back to the tenant who named it), one deadline over resolve,
connect, send and answer, and the URL logged without credentials or query.

The outbox doubles as the delivery log; rows done with (delivered or given up) are deleted
once they are older than the retention (``ROBOCALL_WEBHOOK_RETENTION_DAYS``).
"""

from __future__ import annotations

import base64
import http.client
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import gevent
import gevent.event
import gevent.pool

from robocall.calls.webhook_targets import IPAddress, TargetPolicy
from robocall.calls.webhooks import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_seconds,
    redact_url,
    sign,
)
from robocall.errors import RobocallError, WebhookTargetRefused
from robocall.store.repo import Repo
from robocall.store.webhooks import AttemptOutcome, OutboxRow

log = logging.getLogger(__name__)

ERROR_EXCERPT_CHARS = 200  # an error's text is cut to this (a refused connection's reason)
POLL_SECONDS = 1.0  # look for rows other nodes wrote, or whose backoff ran out, this often
PRUNE_EVERY_SECONDS = 3600.0  # delete rows past the retention this often (and on start)
LEASE_MARGIN_SECONDS = 30.0  # a lease outlives a delivery's deadline by this much
USER_AGENT = "robocall-webhooks/1"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: attempts per event, the first backoff, one attempt's deadline."""

    max_attempts: int = 8
    backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0
    concurrency: int = 8  # deliveries in flight at once (to different calls)
    retention_seconds: float = 30 * 86400.0  # delivered and given-up rows are kept this long
    targets: TargetPolicy = field(default_factory=TargetPolicy)  # where posts may go


@dataclass(frozen=True)
class PostResult:
    """What one POST came to: the HTTP status if one came back, and why it failed if it did."""

    http_status: int | None
    error: str | None
    duration_ms: int | None = None  # connect to answer, or to the failure

    @property
    def delivered(self) -> bool:
        return self.error is None and self.http_status is not None and 200 <= self.http_status < 300


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address already vetted, with the URL's host name for SNI and for the
    certificate check (the name is never resolved again)."""

    def __init__(self, address: str, port: int, *, server_name: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP to the vetted address
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self._server_name
        )


def post_webhook(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_seconds: float,
    targets: TargetPolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PostResult:
    """POST ``body`` to ``url`` once, within ``timeout_seconds`` overall; never raises.

    The host is vetted by ``targets`` (a public-addresses-only policy unless given) just
    before connecting, and the connection goes to a vetted address with the URL's host in the
    ``Host`` header and the TLS server name."""
    started = clock()
    result = _post(url, body, headers, timeout_seconds, targets or TargetPolicy())
    elapsed_ms = round((clock() - started) * 1000)
    return PostResult(result.http_status, result.error, elapsed_ms)


def _post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
    targets: TargetPolicy,
) -> PostResult:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return PostResult(None, "not an http(s) URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent_headers = {
        "Host": parts.netloc.rpartition("@")[2],  # as the URL wrote it, port included
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    if parts.username is not None:  # credentials in the URL: HTTP Basic, as curl does
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        sent_headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    try:
        with gevent.Timeout(timeout_seconds):
            port = parts.port or (443 if scheme == "https" else 80)
            addresses = targets.vet(parts.hostname, port)
            return _post_to_first(
                addresses, port, scheme, parts.hostname, target, body, sent_headers,
                timeout_seconds,
            )
    except WebhookTargetRefused as err:
        return PostResult(None, f"refused: {err}"[:ERROR_EXCERPT_CHARS])
    except gevent.Timeout:
        return PostResult(None, f"no answer within {timeout_seconds:g} s")
    except http.client.HTTPException as err:
        # its text would quote what the receiver sent (a bad status line): name the kind only
        return PostResult(None, f"{type(err).__name__}: the answer is not valid HTTP")
    except (OSError, ValueError) as err:
        return PostResult(None, f"{type(err).__name__}: {err}"[:ERROR_EXCERPT_CHARS])


def _post_to_first(
    addresses: Sequence[IPAddress],
    port: int,
    scheme: str,
    host: str,
    target: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
) -> PostResult:
    """Send to the first vetted address that takes the connection; the answer's status only
    (its body is never read: the delivery log keeps no receiver's text)."""
    for index, address in enumerate(addresses):
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(
                str(address), port, server_name=host, timeout=timeout_seconds
            )
            if scheme == "https"
            else http.client.HTTPConnection(str(address), port, timeout=timeout_seconds)
        )
        try:
            try:
                connection.connect()
            except OSError:
                if index == len(addresses) - 1:
                    raise
                continue  # the next address of the name
            connection.request("POST", target, body=body, headers=dict(headers))
            response = connection.getresponse()
            status = response.status
        finally:
            connection.close()
        if 200 <= status < 300:
            return PostResult(status, None)
        if 300 <= status < 400:
            return PostResult(status, f"HTTP {status}: a redirect, not followed; set callbackUrl "
                                      "to the final URL")
        return PostResult(status, f"HTTP {status}")
    raise OSError("no address to connect to")


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
        self._next_prune = 0.0  # the clock's time of the next pruning (0: at the first pass)

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

    def prune(self) -> int:
        """Delete the delivered and given-up rows older than the retention; how many went."""
        cutoff = self._now() - timedelta(seconds=self._policy.retention_seconds)
        pruned = self._repo.prune_webhooks(cutoff)
        if pruned:
            log.info("webhooks: %d delivery log rows older than %s pruned", pruned, cutoff)
        return pruned

    # --- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                if self._clock() >= self._next_prune:
                    self._next_prune = self._clock() + PRUNE_EVERY_SECONDS
                    self.prune()
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
            row.url,
            body,
            headers,
            timeout_seconds=self._policy.timeout_seconds,
            targets=self._policy.targets,
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
                duration_ms=result.duration_ms,
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

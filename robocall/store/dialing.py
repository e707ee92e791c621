"""The repository's queries for dialing: claim queued calls, and record each call as it goes.

Part of :class:`robocall.store.repo.Repo` (a mixin, so the repository stays the one place with
queries while no module grows much over 500 lines). The claim is the durable commit that
precedes every originate; the progress writes after it are not: losing the last of them to a
power cut costs a detail of a call's report, never a second dial, so on SQLite they skip the
fsync that costs ~4 ms a commit here and would stall the gevent hub at high call rates.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import peewee

from robocall.flow.model import DESTINATION_TIME_ZONE, CallingWindow
from robocall.flow.parse import parse_window
from robocall.flow.schedule import next_start, window_zones, zone_calling_code
from robocall.store.models import Tables
from robocall.store.nodes import (
    DISPATCH_LOCK_SQL,
    UNFINISHED_CALLS_SQL,
    LinesBudget,
    dispatch_lock_params,
    unfinished_calls_params,
)
from robocall.store.records import (
    CallStatus,
    CallTicket,
    ClaimedCall,
    OrganizationLines,
    QueuedCall,
    RequestStatus,
)

_LIVE = (CallStatus.QUEUED.value, CallStatus.DIALING.value, CallStatus.ON_PROGRESS.value)
_ACTIVE_REQUEST = (RequestStatus.SUBMITTED.value, RequestStatus.ON_PROGRESS.value)
# The hangup cause of a call its request's calling window closed on before it could be dialled.
WINDOW_CLOSED_CAUSE = "CALLING_WINDOW_CLOSED"
# The hangup cause of a queued call its request's DELETE cancelled.
CANCELLED_CAUSE = "CANCELLED_BY_CLIENT"
# Calls outside their daily window looked at per claim at most (each is then skipped by the
# claim's filter until its window opens): a large request waking at night costs a few claims.
MAX_WINDOW_SCAN = 2000
WINDOW_BATCH = 250


# What a claim reads of each call it may claim, in claim order (request, then destination):
# the queue head's columns, filter and order, shared by the claim and the prefetcher's read.
_HEAD_NAMES = (
    "id", "request", "phone", "caller", "properties", "request_id",
    "enable_call_recording", "machine_detection", "calling_window", "request_status",
)
_HEAD_COLUMNS = (
    "c.id", "c.request_seq", "c.phone", "c.caller", "c.properties", "r.request_id",
    "r.enable_call_recording", "r.machine_detection", "r.calling_window", "r.status",
)
_HEAD_FROM = (
    "FROM calls c JOIN call_requests r ON c.request_seq = r.id "
    "WHERE c.org_id = {p} AND c.status = {p} "
    "AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= {p}) "
    "AND (r.not_before IS NULL OR r.not_before <= {p}) AND r.cancelled_at IS NULL "
    "ORDER BY c.request_seq, c.position LIMIT {p}"
)
_CLAIMABLE_NAMES = (*_HEAD_NAMES, "call_flow")
_CLAIMABLE_SQL = f"SELECT {', '.join(_HEAD_COLUMNS)}, r.call_flow {_HEAD_FROM}"

# Whether a request of the organization ``o`` is active past its window's end (notAfter): the
# claim then cancels its queued calls first.
_WINDOW_ENDED_SQL = (
    "EXISTS (SELECT 1 FROM call_requests r WHERE r.org_id = o.id AND r.not_after <= {p} "
    "AND r.status IN ({p}, {p}))"
)
# What a claim reads first (SQLite): the organization, the lease's holder, whether a window ended.
_CLAIM_START_SQL = (
    "SELECT o.id, o.line_variable, o.line_value, "
    "(SELECT token FROM nodes WHERE node_id = {p}), "
    f"{_WINDOW_ENDED_SQL} "
    "FROM organizations o WHERE o.id = {p}"
)
# On PostgreSQL everything the claim reads is one statement, sent right after the organization's
# lock (store.nodes) in the same round trip: READ COMMITTED takes a snapshot per statement, so
# this one's is taken once the lock is granted and sees every claim committed before. Besides
# what _CLAIM_START_SQL reads: the channel uuids of the organization's unfinished calls (every
# node's: the lines budget), and the queue head, locked for this transaction (rows another
# claim holds skipped), as JSON arrays, each request's call flow once beside them.
_PG_CLAIM_START_SQL = (
    f"WITH head AS MATERIALIZED (SELECT {', '.join(_HEAD_COLUMNS)}, c.position {_HEAD_FROM} "
    "FOR UPDATE OF c SKIP LOCKED) "
    "SELECT o.id, o.line_variable, o.line_value, "
    "(SELECT token FROM nodes WHERE node_id = {p}), "
    f"{_WINDOW_ENDED_SQL}, "
    f"ARRAY({UNFINISHED_CALLS_SQL}), "
    "(SELECT json_agg(json_build_array("
    + ", ".join(f"h.{column.split('.')[1]}" for column in _HEAD_COLUMNS)
    + ") ORDER BY h.request_seq, h.position) FROM head h), "
    "(SELECT json_object_agg(r.id, r.call_flow) FROM call_requests r "
    "WHERE r.id IN (SELECT request_seq FROM head)) "
    "FROM organizations o WHERE o.id = {p}"
).format(p="%s")
# A claim's calls go dialing, each with its channel uuid and switch, in one statement.
_CLAIM_SQL = (
    "UPDATE calls SET status = {p}, channel_uuid = CASE id {uuids} END, "
    "switch = CASE id {switches} END, "
    "node_id = {p}, attempt = attempt + 1, next_attempt_at = NULL, updated_at = {p} "
    "WHERE id IN ({ids})"
)
# The requests a claim took their first calls of move on from submitted.
_MOVE_ON_SQL = (
    "UPDATE call_requests SET status = {p}, updated_at = {p} WHERE status = {p} AND id IN ({ids})"
)


class _ClaimingOrganization(NamedTuple):
    """What a claim needs of its organization."""

    id: str
    line_variable: str
    line_value: str


class _ClaimStart(NamedTuple):
    """What a claim reads before it takes any call."""

    org: _ClaimingOrganization
    holder: str | None  # the token of the node's lease holder
    window_ended: bool  # a request's notAfter passed while it was active
    unfinished: frozenset[str]  # PostgreSQL: channel uuids of every node's unfinished calls
    head: list[dict[str, Any]] | None  # PostgreSQL: the queue head, locked, in claim order


class DialingQueries:
    """Claiming and call progress. Mixed into ``Repo``, which provides the plumbing below."""

    _db: peewee.Database
    _tables: Tables
    _postgresql: bool
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]
    _session: Callable[[], AbstractContextManager[None]]
    _check_lease: Callable[[str, str], None]
    _check_holder: Callable[[str, str, str | None], None]
    _finish_request: Callable[[int, datetime], bool]

    # --- what the dispatcher reads ------------------------------------------------------------

    def organizations_with_lines(self) -> list[OrganizationLines]:
        """Every organization with its lines, pace and line rule."""
        organization = self._tables.organization
        with self._session():
            rows = list(organization.select())
        return [
            OrganizationLines(
                id=row.id,
                max_concurrent_calls=row.max_concurrent_calls,
                cps=row.cps,
                line_variable=row.line_variable,
                line_value=row.line_value,
            )
            for row in rows
        ]

    def organizations_with_queued_calls(self) -> set[str]:
        """The organizations that have at least one queued call (one index probe each)."""
        organization, call = self._tables.organization, self._tables.call
        waiting = (
            call.select(call.id)
            .where(
                (call.organization == organization.id) & (call.status == CallStatus.QUEUED.value)
            )
            .limit(1)
        )
        with self._session():
            return {
                row.id
                for row in organization.select(organization.id).where(peewee.fn.EXISTS(waiting))
            }

    # --- the claim: durable before the originate -----------------------------------------------

    def claim_calls(
        self,
        organization_id: str,
        channel_uuids: Sequence[str],
        *,
        node_id: str | None = None,
        budget: LinesBudget | None = None,
        lease_token: str | None = None,
        switches: Sequence[str] | None = None,
    ) -> list[ClaimedCall]:
        """Commit up to ``len(channel_uuids)`` of the organization's queued calls as ``dialing``.

        First in, first out: by request submission, then destination order. Each claimed call
        gets one of ``channel_uuids`` as the uuid its originate will carry, and ``node_id`` as
        its owner. On PostgreSQL the rows are locked and others' locked rows skipped, so two
        nodes never claim one call. With ``budget``, the organization's dispatch is serialized
        across nodes and at most ``budget(unfinished channel uuids)`` calls are claimed
        (``store.nodes``). Calls not yet due (a retry's backoff, a window not open yet) are
        skipped, keeping their place; a call whose window is over is cancelled instead. With
        ``lease_token``, nothing is claimed unless this process still holds ``node_id``'s lease
        (LeaseLost): checked in the claim's own transaction. ``switches``, parallel to
        ``channel_uuids``, names the switch of a pool each call is placed on (stored with it, so
        its runner and a later recovery ask that switch).
        """
        if not channel_uuids:
            return []
        now = self._now()
        with self._writing(durable=True):
            start = self._claim_start(organization_id, node_id, now, len(channel_uuids),
                                      lock=budget is not None)
            if lease_token is not None and node_id is not None:
                if start is None:
                    self._check_lease(node_id, lease_token)
                else:
                    self._check_holder(node_id, lease_token, start.holder)
            if start is None:
                return []
            allowed = len(channel_uuids)
            if budget is not None:
                allowed = min(allowed, budget(start.unfinished))
                if allowed <= 0:
                    return []
            head = start.head
            if start.window_ended:
                self._expire_windows(organization_id, now)
                head = None  # some of it may be cancelled now: read it again
            return self._take(start.org, head, allowed, channel_uuids, switches, node_id, now)

    def _claim_start(
        self, organization_id: str, node_id: str | None, now: datetime, limit: int, *, lock: bool
    ) -> _ClaimStart | None:
        """What the claim reads before it takes a call (None: no such organization). With
        ``lock`` (PostgreSQL), the organization's dispatch lock is taken first: it is held until
        the claim commits, so another node's claim for the organization waits for it and then
        sees this claim's calls as dialing. On PostgreSQL this is one round trip, with the
        transaction's BEGIN (store.db) and the queue head's first ``limit`` calls."""
        if not self._postgresql:
            found = self._db.execute_sql(
                _CLAIM_START_SQL.format(p=self._db.param),
                (node_id, now, *_ACTIVE_REQUEST, organization_id),
            ).fetchone()
            if found is None:
                return None
            # A SQLite database has one node, whose own books already hold all its dials.
            return _ClaimStart(_ClaimingOrganization(*found[:3]), found[3], bool(found[4]),
                               frozenset(), None)
        sql, params = _PG_CLAIM_START_SQL, (
            organization_id, CallStatus.QUEUED.value, now, now, limit,  # the head
            node_id, now, *_ACTIVE_REQUEST, *unfinished_calls_params(organization_id),
            organization_id,
        )
        if lock:
            sql, params = f"{DISPATCH_LOCK_SQL}; {sql}", (
                *dispatch_lock_params(organization_id), *params
            )
        found = self._db.execute_sql(sql, params).fetchone()
        if found is None:
            return None
        org_id, line_variable, line_value, holder, window_ended, unfinished, head, flows = found
        rows = []
        for values in head or ():
            row = dict(zip(_HEAD_NAMES, values, strict=True))
            row["call_flow"] = flows[str(row["request"])]  # JSON object keys are text
            rows.append(row)
        return _ClaimStart(_ClaimingOrganization(org_id, line_variable, line_value), holder,
                           window_ended, frozenset(unfinished), rows)

    def _take(
        self, org: _ClaimingOrganization, head: list[dict[str, Any]] | None, allowed: int,
        channel_uuids: Sequence[str], switches: Sequence[str] | None, node_id: str | None,
        now: datetime,
    ) -> list[ClaimedCall]:
        """Claim up to ``allowed`` calls from the queue head (``head``: read already, locked,
        at least ``allowed`` calls long unless the queue is shorter; None: read here). Calls out
        of their calling window are moved on and the head read further, a batch at a time."""
        claimed: list[ClaimedCall] = []
        sequences: set[int] = set()  # requests this claim moves on from submitted
        scanned, batch = 0, 0
        while True:
            wanted = allowed - len(claimed)
            limit = max(wanted, batch)
            if head is not None:  # the first look: what the claim's first statement read
                rows, head = head[:limit], None
            else:
                rows = self._claimable(org.id, now, limit, lock=True)
            scanned += len(rows)
            taken = self._in_window(rows, now)[:wanted]
            first = len(claimed)
            uuids = channel_uuids[first:first + len(taken)]
            placed = (switches[first:first + len(taken)] if switches is not None
                      else [""] * len(taken))
            tickets = self._tickets(org, taken, uuids, placed)
            for row in taken:
                # Only a request's first claim moves it on: the others skip a statement.
                if row["request_status"] == RequestStatus.SUBMITTED.value:
                    sequences.add(row["request"])
            more = (len(claimed) + len(taken) < allowed and len(rows) >= limit
                    and scanned < MAX_WINDOW_SCAN)
            statements = [self._claim_statement(taken, uuids, placed, node_id, now)] if taken \
                else []
            claimed.extend(tickets)
            if not more:
                if sequences:
                    statements.append(self._move_on_statement(sequences, now))
                # The claim's last writes and its COMMIT: one round trip on PostgreSQL.
                self._write_last(statements)
                return claimed
            # Written now: the next read must not find these calls queued.
            for sql, params in statements:
                self._db.execute_sql(sql, params)
            batch = WINDOW_BATCH  # calls were out of their window: look further at once

    def upcoming_calls(self, organization_id: str, limit: int) -> list[QueuedCall]:
        """The organization's next ``limit`` claimable calls, in the order a claim takes them,
        read without claiming or locking them (what the first-message prefetcher renders)."""
        with self._session():
            rows = self._claimable(organization_id, self._now(), limit, lock=False)
            return [
                QueuedCall(
                    call_id=row["id"],
                    request_seq=row["request"],
                    call_flow_json=row["call_flow"],
                    properties=json.loads(row["properties"]),
                )
                for row in rows
            ]

    def _claimable(
        self, organization_id: str, now: datetime, limit: int, *, lock: bool
    ) -> list[dict[str, Any]]:
        """The organization's next ``limit`` claimable calls, in claim order (each a dict of
        the names below). With ``lock`` (PostgreSQL), locked for this transaction; rows
        another claim holds are skipped. Plain SQL: the dispatcher runs it at every freed line,
        and building it with the query builder cost more than running it."""
        p = self._db.param
        lock_rows = " FOR UPDATE OF c SKIP LOCKED" if lock and self._postgresql else ""
        cursor = self._db.execute_sql(
            f"{_CLAIMABLE_SQL.format(p=p)}{lock_rows}",
            (organization_id, CallStatus.QUEUED.value, now, now, limit),
        )
        return [dict(zip(_CLAIMABLE_NAMES, row, strict=True)) for row in cursor.fetchall()]

    def _in_window(self, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """The rows whose calling window is open now; the others wait for it or are cancelled.

        A call found outside its window is moved on together with every queued call of its
        request that shares its zone, in one statement: a request waiting for its window is
        passed over by the claim's filter from then on, not looked at call by call.
        """
        call = self._tables.call
        ready: list[dict[str, Any]] = []
        moment = now.replace(tzinfo=UTC)
        done: set[tuple[int, str]] = set()  # (request, zone group) already moved on
        for row in rows:
            window = _window(row["calling_window"])
            if window is None:
                ready.append(row)
                continue
            zones = window_zones(window.daily, row["phone"]) if window.daily else ()
            start = next_start(window, zones, moment)
            if start is not None and start <= moment:
                ready.append(row)
                continue
            group, which = self._zone_group(row, window)
            if (row["request"], group) in done:
                continue
            done.add((row["request"], group))
            if start is None:
                self._cancel_calls(which, WINDOW_CLOSED_CAUSE, now)
                self._finish_request_if_done(row["request"], now)
            else:
                later = naive_utc(start)
                call.update(next_attempt_at=later, updated_at=now).where(
                    which
                    & (call.status == CallStatus.QUEUED.value)
                    & (call.next_attempt_at.is_null() | (call.next_attempt_at < later))
                ).execute()
        return ready

    def _zone_group(self, row: dict[str, Any], window: CallingWindow) -> tuple[str, Any]:
        """The queued calls of the row's request in the row's zone: (a name, the condition)."""
        call = self._tables.call
        of_request = call.request == row["request"]
        if window.daily is None or window.daily.time_zone != DESTINATION_TIME_ZONE:
            return "request", of_request
        code = zone_calling_code(row["phone"])
        if code is None:  # a country of several zones: this call alone
            return f"call {row['id']}", call.id == row["id"]
        return f"+{code}", of_request & (
            call.phone.startswith(f"+{code}") | call.phone.startswith(code)
        )

    def _claim_statement(
        self, rows: list[dict[str, Any]], channel_uuids: Sequence[str], switches: Sequence[str],
        node_id: str | None, now: datetime,
    ) -> tuple[str, list[Any]]:
        """The statement that marks ``rows`` dialing, each with its channel uuid and its switch
        in a pool (``""``: robocall has one)."""
        p = self._db.param
        when = " ".join([f"WHEN {p} THEN {p}"] * len(rows))
        params: list[Any] = [CallStatus.DIALING.value]
        for row, uuid in zip(rows, channel_uuids, strict=True):
            params += (row["id"], uuid)
        for row, switch in zip(rows, switches, strict=True):
            params += (row["id"], switch or None)
        params += (node_id, now, *(row["id"] for row in rows))
        sql = _CLAIM_SQL.format(p=p, uuids=when, switches=when, ids=", ".join([p] * len(rows)))
        return sql, params

    def _move_on_statement(self, sequences: set[int], now: datetime) -> tuple[str, list[Any]]:
        """The statement that moves the requests ``sequences`` on from submitted."""
        p = self._db.param
        return _MOVE_ON_SQL.format(p=p, ids=", ".join([p] * len(sequences))), [
            RequestStatus.ON_PROGRESS.value, now, RequestStatus.SUBMITTED.value, *sequences,
        ]

    def _write_last(self, statements: list[tuple[str, list[Any]]]) -> None:
        """The transaction's last statements; on PostgreSQL sent together with its COMMIT."""
        commit_with = getattr(self._db, "commit_with", None)
        if statements and commit_with is not None and self._db.transaction_depth() == 1:
            commit_with("; ".join(sql for sql, _ in statements),
                        [value for _, params in statements for value in params])
            return
        for sql, params in statements:
            self._db.execute_sql(sql, params)

    @staticmethod
    def _tickets(
        org: _ClaimingOrganization, rows: list[dict[str, Any]], channel_uuids: Sequence[str],
        switches: Sequence[str],
    ) -> list[ClaimedCall]:
        """What the dispatcher is handed of each claimed call."""
        return [
            ClaimedCall(
                ticket=CallTicket(
                    call_id=row["id"],
                    request_id=row["request_id"],
                    organization_id=org.id,
                    phone=row["phone"],
                    caller=row["caller"],
                    properties=json.loads(row["properties"]),
                    channel_uuid=uuid,
                    line_variable=(org.line_variable, org.line_value),
                    record=bool(row["enable_call_recording"]),
                    switch=switch,
                ),
                request_seq=row["request"],
                call_flow_json=row["call_flow"],
                machine_detection_json=row["machine_detection"],
            )
            for row, uuid, switch in zip(rows, channel_uuids, switches, strict=True)
        ]

    def _expire_windows(self, organization_id: str, now: datetime) -> None:
        """Cancel the queued calls of requests whose window ended (``notAfter`` passed)."""
        call, p = self._tables.call, self._db.param
        expired = [
            request_seq
            for (request_seq,) in self._db.execute_sql(
                f"SELECT id FROM call_requests WHERE org_id = {p} AND not_after <= {p} "
                f"AND status IN ({p}, {p})",
                (organization_id, now, *_ACTIVE_REQUEST),
            ).fetchall()
        ]
        for request_seq in expired:
            queued = (call.request == request_seq) & (call.status == CallStatus.QUEUED.value)
            if self._cancel_calls(queued, WINDOW_CLOSED_CAUSE, now):
                self._finish_request_if_done(request_seq, now)

    def _cancel_calls(self, which: Any, cause: str, now: datetime) -> int:
        """Mark the queued calls ``which`` selects as cancelled with ``cause``; how many."""
        call = self._tables.call
        return int(
            call.update(
                status=CallStatus.CANCELLED.value,
                hangup_cause=cause,
                ended_at=now,
                next_attempt_at=None,
                updated_at=now,
            )
            .where(which & (call.status == CallStatus.QUEUED.value))
            .execute()
        )

    def _finish_request_if_done(self, request_seq: int, now: datetime) -> bool:
        """Once none of its calls is live, a request is ``completed`` (``cancelled`` if the
        client cancelled it). True when this call made it final (``store.progress``)."""
        return self._finish_request(request_seq, now)

    def call_belongs_to(self, call_id: int, organization_id: str) -> bool:
        """Whether call ``call_id`` is one of the organization's."""
        call = self._tables.call
        with self._session():
            owner = call.select(call.organization).where(call.id == call_id).scalar()
        return owner == organization_id

    def call_not_dialled(self, call_id: int) -> None:
        """The originate provably never left: back to ``queued``, as if never claimed (or
        ``cancelled``, if its request was cancelled meanwhile)."""
        call, request = self._tables.call, self._tables.call_request
        now = self._now()
        with self._writing(durable=True):
            dialing = (call.id == call_id) & (call.status == CallStatus.DIALING.value)
            call.update(
                status=CallStatus.QUEUED.value,
                channel_uuid=None,
                attempt=call.attempt - 1,
                updated_at=now,
            ).where(dialing).execute()
            row = (
                call.select(call.request, request.cancelled_at)
                .join(request, on=(call.request == request.id))
                .where(call.id == call_id)
                .dicts()
                .first()
            )
            if row is not None and row["cancelled_at"] is not None:
                self._cancel_calls(call.id == call_id, CANCELLED_CAUSE, now)
                self._finish_request_if_done(row["request"], now)


@functools.lru_cache(maxsize=1024)
def _window(text: str | None) -> CallingWindow | None:
    # stored as accepted; parsed once per request text, not once per claimed call
    return parse_window(json.loads(text)) if text else None


def naive_utc(moment: datetime) -> datetime:
    """An aware moment as the store keeps every timestamp: naive, in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)

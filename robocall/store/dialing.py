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
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from robocall.flow.actions import StepResult
from robocall.flow.model import DESTINATION_TIME_ZONE, CallingWindow, RetryPolicy
from robocall.flow.parse import parse_retry, parse_window
from robocall.flow.schedule import next_start, should_retry, window_zones, zone_calling_code
from robocall.flow.status import Leg
from robocall.store.call_report import leg_record, with_step
from robocall.store.models import Tables
from robocall.store.nodes import LinesBudget
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


class DialingQueries:
    """Claiming and call progress. Mixed into ``Repo``, which provides the plumbing below."""

    _db: peewee.Database
    _tables: Tables
    _postgresql: bool
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]
    _session: Callable[[], AbstractContextManager[None]]
    _lines_budget: Callable[[str, LinesBudget], int]
    _check_lease: Callable[[str, str], None]

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
        organization, request = self._tables.organization, self._tables.call_request
        now = self._now()
        with self._writing(durable=True):
            if lease_token is not None and node_id is not None:
                self._check_lease(node_id, lease_token)
            org = organization.get_or_none(organization.id == organization_id)
            if org is None:
                return []
            allowed = len(channel_uuids)
            if budget is not None:
                allowed = min(allowed, self._lines_budget(organization_id, budget))
                if allowed <= 0:
                    return []
            self._expire_windows(organization_id, now)
            claimed: list[ClaimedCall] = []
            sequences: set[int] = set()  # requests this claim moves on from submitted
            scanned, batch = 0, 0
            while len(claimed) < allowed and scanned < MAX_WINDOW_SCAN:
                wanted = allowed - len(claimed)
                limit = max(wanted, batch)
                rows = list(self._claimable(organization_id, now, limit).dicts())
                scanned += len(rows)
                for row in self._in_window(rows, now)[:wanted]:
                    index = len(claimed)
                    switch = switches[index] if switches is not None else ""
                    claimed.append(
                        self._claim(org, row, channel_uuids[index], node_id, now, switch)
                    )
                    # Only a request's first claim moves it on: the others skip a round trip.
                    if row["request_status"] == RequestStatus.SUBMITTED.value:
                        sequences.add(row["request"])
                if len(rows) < limit:
                    break
                batch = WINDOW_BATCH  # calls were out of their window: look further at once
            if sequences:
                request.update(status=RequestStatus.ON_PROGRESS.value, updated_at=now).where(
                    request.id.in_(sequences) & (request.status == RequestStatus.SUBMITTED.value)
                ).execute()
        return claimed

    def upcoming_calls(self, organization_id: str, limit: int) -> list[QueuedCall]:
        """The organization's next ``limit`` claimable calls, in the order a claim takes them,
        read without claiming or locking them (what the first-message prefetcher renders)."""
        rows = self._claimable(organization_id, self._now(), limit).for_update(False).dicts()
        with self._session():
            return [
                QueuedCall(
                    call_id=row["id"],
                    request_seq=row["request"],
                    call_flow_json=row["call_flow"],
                    properties=json.loads(row["properties"]),
                )
                for row in rows
            ]

    def _claimable(self, organization_id: str, now: datetime, limit: int) -> Any:
        call, request = self._tables.call, self._tables.call_request
        query = (
            call.select(
                call.id,
                call.request,
                call.phone,
                call.caller,
                call.properties,
                request.request_id,
                request.call_flow,
                request.enable_call_recording,
                request.machine_detection,
                request.calling_window,
                request.status.alias("request_status"),
            )
            .join(request, on=(call.request == request.id))
            .where(
                (call.organization == organization_id)
                & (call.status == CallStatus.QUEUED.value)
                & (call.next_attempt_at.is_null() | (call.next_attempt_at <= now))
                & (request.not_before.is_null() | (request.not_before <= now))
                & request.cancelled_at.is_null()
            )
            .order_by(call.request, call.position)
            .limit(limit)
        )
        if self._postgresql:
            query = query.for_update(of=call, skip_locked=True)
        return query

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

    def _claim(
        self, org: Any, row: dict[str, Any], channel_uuid: str, node_id: str | None,
        now: datetime, switch: str = "",
    ) -> ClaimedCall:
        call = self._tables.call
        call.update(
            status=CallStatus.DIALING.value,
            channel_uuid=channel_uuid,
            node=node_id,
            switch=switch or None,
            attempt=call.attempt + 1,
            next_attempt_at=None,
            updated_at=now,
        ).where(call.id == row["id"]).execute()
        return ClaimedCall(
            ticket=CallTicket(
                call_id=row["id"],
                request_id=row["request_id"],
                organization_id=org.id,
                phone=row["phone"],
                caller=row["caller"],
                properties=json.loads(row["properties"]),
                channel_uuid=channel_uuid,
                line_variable=(org.line_variable, org.line_value),
                record=bool(row["enable_call_recording"]),
                switch=switch,
            ),
            request_seq=row["request"],
            call_flow_json=row["call_flow"],
            machine_detection_json=row["machine_detection"],
        )

    def _expire_windows(self, organization_id: str, now: datetime) -> None:
        """Cancel the queued calls of requests whose window ended (``notAfter`` passed)."""
        request, call = self._tables.call_request, self._tables.call
        expired = [
            row.id
            for row in request.select(request.id).where(
                (request.organization == organization_id)
                & (request.not_after <= now)
                & request.status.in_(_ACTIVE_REQUEST)
            )
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
        client cancelled it). True when this call made it final."""
        request, counts = self._tables.call_request, self._tables.request_count
        live = (
            counts.select(peewee.fn.COALESCE(peewee.fn.SUM(counts.count), 0))
            .where((counts.request == request_seq) & counts.status.in_(_LIVE))
            .scalar()
        )
        if live:
            return False
        final = peewee.Case(
            None,
            ((request.cancelled_at.is_null(), RequestStatus.COMPLETED.value),),
            RequestStatus.CANCELLED.value,
        )
        finished = (
            request.update(status=final, updated_at=now)
            .where((request.id == request_seq) & request.status.in_(_ACTIVE_REQUEST))
            .execute()
        )
        return bool(finished)

    def call_belongs_to(self, call_id: int, organization_id: str) -> bool:
        """Whether call ``call_id`` is one of the organization's."""
        call = self._tables.call
        with self._session():
            owner = call.select(call.organization).where(call.id == call_id).scalar()
        return owner == organization_id

    # --- a call's progress (the runner's CallLog) ----------------------------------------------

    def call_leg(self, call_id: int, leg: Leg) -> None:
        """Record one FreeSWITCH leg of the call."""
        self._update_json(call_id, "monitor", lambda legs: [*legs, leg_record(leg)])

    def call_step(self, call_id: int, result: StepResult) -> None:
        """Record one step result (a running transfer's final result replaces its progress)."""
        self._update_json(call_id, "steps", lambda steps: with_step(steps, result))

    def call_answered_by(self, call_id: int, answered_by: str, after_ms: int) -> None:
        """Answering-machine detection's verdict: who answered, ms after the answer."""
        call = self._tables.call
        with self._writing(durable=False):
            call.update(
                answered_by=answered_by, answered_by_ms=after_ms, updated_at=self._now()
            ).where(call.id == call_id).execute()

    def call_answered(self, call_id: int, answered_at: float) -> None:
        """The callee answered: the call is ``onProgress``."""
        call = self._tables.call
        with self._writing(durable=False):
            call.update(
                status=CallStatus.ON_PROGRESS.value,
                answered_at=_stamp(answered_at),
                updated_at=self._now(),
            ).where(call.id == call_id).execute()

    def call_ended(
        self,
        call_id: int,
        *,
        status: CallStatus,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
    ) -> bool:
        """The call is final; its request completes with its last live call (then True).

        An unanswered attempt whose definite outcome its request's retry policy names, with
        attempts left, goes back to ``queued`` instead, due after the policy's backoff.
        """
        call, request = self._tables.call, self._tables.call_request
        final = CallStatus(status)
        now = self._now()
        with self._writing(durable=False):
            row = (
                call.select(call.request, call.attempt, request.retry_policy,
                            request.cancelled_at)
                .join(request, on=(call.request == request.id))
                .where(call.id == call_id)
                .dicts()
                .first()
            )
            if row is None:
                return False
            policy = _retry(row["retry_policy"])
            if (
                final is CallStatus.FAILED
                and row["cancelled_at"] is None
                and should_retry(policy, hangup_cause, row["attempt"])
            ):
                assert policy is not None  # should_retry is False without one
                call.update(
                    status=CallStatus.QUEUED.value,
                    channel_uuid=None,
                    hangup_cause=hangup_cause,  # the last attempt's, until the next one ends
                    steps="[]",
                    next_attempt_at=now + timedelta(seconds=policy.backoff_seconds),
                    updated_at=now,
                ).where(call.id == call_id).execute()
                return False
            call.update(
                status=final.value,
                hangup_cause=hangup_cause,
                ended_at=_stamp(ended_at),
                duration_seconds=duration_seconds,
                updated_at=now,
            ).where(call.id == call_id).execute()
            return self._finish_request_if_done(row["request"], now)

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

    def _update_json(
        self, call_id: int, column: str, change: Callable[[list[Any]], list[Any]]
    ) -> None:
        call = self._tables.call
        field = getattr(call, column)
        with self._writing(durable=False):
            current = call.select(field).where(call.id == call_id).scalar()
            if current is None:
                return
            entries = change(json.loads(current))
            call.update({field: json.dumps(entries), call.updated_at: self._now()}).where(
                call.id == call_id
            ).execute()


@functools.lru_cache(maxsize=1024)
def _window(text: str | None) -> CallingWindow | None:
    # stored as accepted; parsed once per request text, not once per claimed call
    return parse_window(json.loads(text)) if text else None


@functools.lru_cache(maxsize=1024)
def _retry(text: str | None) -> RetryPolicy | None:
    return parse_retry(json.loads(text)) if text else None


def naive_utc(moment: datetime) -> datetime:
    """An aware moment as the store keeps every timestamp: naive, in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def _stamp(epoch_seconds: float) -> datetime:
    # stored naive in UTC, as every timestamp of the store
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)

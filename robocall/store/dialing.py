"""The repository's queries for dialing: claim queued calls, and record each call as it goes.

Part of :class:`robocall.store.repo.Repo` (a mixin, so the repository stays the one place with
queries while no module grows much over 500 lines). The claim is the durable commit that
precedes every originate; the progress writes after it are not: losing the last of them to a
power cut costs a detail of a call's report, never a second dial, so on SQLite they skip the
fsync that costs ~4 ms a commit here and would stall the gevent hub at high call rates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import peewee

from robocall.store.models import Tables
from robocall.store.nodes import LinesBudget
from robocall.store.records import (
    CallStatus,
    CallTicket,
    ClaimedCall,
    OrganizationLines,
    RequestStatus,
)

_LIVE = (CallStatus.QUEUED.value, CallStatus.DIALING.value, CallStatus.ON_PROGRESS.value)


class DialingQueries:
    """Claiming and call progress. Mixed into ``Repo``, which provides the plumbing below."""

    _db: peewee.Database
    _tables: Tables
    _postgresql: bool
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]
    _session: Callable[[], AbstractContextManager[None]]
    _lines_budget: Callable[[str, LinesBudget], int]

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
    ) -> list[ClaimedCall]:
        """Commit up to ``len(channel_uuids)`` of the organization's queued calls as ``dialing``.

        First in, first out: by request submission, then destination order. Each claimed call
        gets one of ``channel_uuids`` as the uuid its originate will carry, and ``node_id`` as
        its owner. On PostgreSQL the rows are locked and others' locked rows skipped, so two
        nodes never claim one call. With ``budget``, the organization's dispatch is serialized
        across nodes and at most ``budget(unfinished channel uuids)`` calls are claimed
        (``store.nodes``).
        """
        if not channel_uuids:
            return []
        call, request, organization = (
            self._tables.call,
            self._tables.call_request,
            self._tables.organization,
        )
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
                request.status.alias("request_status"),
            )
            .join(request, on=(call.request == request.id))
            .where(
                (call.organization == organization_id) & (call.status == CallStatus.QUEUED.value)
            )
            .order_by(call.request, call.position)
            .limit(len(channel_uuids))
        )
        if self._postgresql:
            query = query.for_update(of=call, skip_locked=True)
        now = self._now()
        with self._writing(durable=True):
            org = organization.get_or_none(organization.id == organization_id)
            if org is None:
                return []
            if budget is not None:
                wanted = min(len(channel_uuids), self._lines_budget(organization_id, budget))
                if wanted <= 0:
                    return []
                query = query.limit(wanted)
            rows = list(query.dicts())
            claimed: list[ClaimedCall] = []
            for row, channel_uuid in zip(rows, channel_uuids, strict=False):
                call.update(
                    status=CallStatus.DIALING.value,
                    channel_uuid=channel_uuid,
                    node=node_id,
                    attempt=call.attempt + 1,
                    updated_at=now,
                ).where(call.id == row["id"]).execute()
                claimed.append(
                    ClaimedCall(
                        ticket=CallTicket(
                            call_id=row["id"],
                            request_id=row["request_id"],
                            organization_id=organization_id,
                            phone=row["phone"],
                            caller=row["caller"],
                            properties=json.loads(row["properties"]),
                            channel_uuid=channel_uuid,
                            line_variable=(org.line_variable, org.line_value),
                            record=bool(row["enable_call_recording"]),
                        ),
                        request_seq=row["request"],
                        call_flow_json=row["call_flow"],
                    )
                )
            # Only a request's first claim moves it on: the others skip a round trip.
            sequences = {
                row["request"]
                for row in rows
                if row["request_status"] == RequestStatus.SUBMITTED.value
            }
            if sequences:
                request.update(status=RequestStatus.ON_PROGRESS.value, updated_at=now).where(
                    request.id.in_(sequences) & (request.status == RequestStatus.SUBMITTED.value)
                ).execute()
        return claimed

    def call_belongs_to(self, call_id: int, organization_id: str) -> bool:
        """Whether call ``call_id`` is one of the organization's."""
        call = self._tables.call
        with self._session():
            owner = call.select(call.organization).where(call.id == call_id).scalar()
        return owner == organization_id

    # --- a call's progress (the runner's CallLog) ----------------------------------------------

    def call_leg(self, call_id: int, leg: Mapping[str, str]) -> None:
        """Append one ``monitorData`` entry (a FreeSWITCH leg of the call)."""
        self._append_json(call_id, "monitor", dict(leg))

    def call_step(self, call_id: int, entry: Mapping[str, Any]) -> None:
        """Append one ``callFlowSteps`` entry."""
        self._append_json(call_id, "steps", dict(entry))

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
        status: str,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
    ) -> bool:
        """The call is final; its request completes with its last live call (then True)."""
        call, request, counts = (
            self._tables.call,
            self._tables.call_request,
            self._tables.request_count,
        )
        final = CallStatus(status)
        with self._writing(durable=False):
            request_seq = call.select(call.request).where(call.id == call_id).scalar()
            if request_seq is None:
                return False
            call.update(
                status=final.value,
                hangup_cause=hangup_cause,
                ended_at=_stamp(ended_at),
                duration_seconds=duration_seconds,
                updated_at=self._now(),
            ).where(call.id == call_id).execute()
            live = (
                counts.select(peewee.fn.COALESCE(peewee.fn.SUM(counts.count), 0))
                .where((counts.request == request_seq) & counts.status.in_(_LIVE))
                .scalar()
            )
            if live:
                return False
            completed = (
                request.update(status=RequestStatus.COMPLETED.value, updated_at=self._now())
                .where(
                    (request.id == request_seq)
                    & request.status.in_(
                        (RequestStatus.SUBMITTED.value, RequestStatus.ON_PROGRESS.value)
                    )
                )
                .execute()
            )
            return bool(completed)

    def call_not_dialled(self, call_id: int) -> None:
        """The originate provably never left: back to ``queued``, as if never claimed."""
        call = self._tables.call
        with self._writing(durable=True):
            call.update(
                status=CallStatus.QUEUED.value,
                channel_uuid=None,
                attempt=call.attempt - 1,
                updated_at=self._now(),
            ).where((call.id == call_id) & (call.status == CallStatus.DIALING.value)).execute()

    def _append_json(self, call_id: int, column: str, entry: dict[str, Any]) -> None:
        call = self._tables.call
        field = getattr(call, column)
        with self._writing(durable=False):
            current = call.select(field).where(call.id == call_id).scalar()
            if current is None:
                return
            entries = json.loads(current)
            entries.append(entry)
            call.update({field: json.dumps(entries), call.updated_at: self._now()}).where(
                call.id == call_id
            ).execute()


def _stamp(epoch_seconds: float) -> datetime:
    # stored naive in UTC, as every timestamp of the store
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)

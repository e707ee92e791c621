"""The repository's queries for a client's control of its calls: cancel a request, change the
organization's lines, count its queued and live calls (the extensions beyond the seed).

Part of :class:`robocall.store.repo.Repo` (a mixin, as ``store.dialing`` is).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import peewee

from robocall.errors import NotFound
from robocall.flow.model import LinesChange
from robocall.store.dialing import CANCELLED_CAUSE
from robocall.store.models import Tables
from robocall.store.records import CallStatus, LineCounts, RequestStatus

_ROBO_LIVE = (CallStatus.DIALING.value, CallStatus.ON_PROGRESS.value)


class ControlQueries:
    """Cancelling and line changes. Mixed into ``Repo``, which provides the plumbing below."""

    _tables: Tables
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]
    _session: Callable[[], AbstractContextManager[None]]
    _cancel_calls: Callable[[Any, str, datetime], int]
    _finish_request_if_done: Callable[[int, datetime], bool]

    def cancel_request(self, org_id: str, request_id: str) -> None:
        """Cancel the organization's request: its queued calls now, the request itself once
        no call of it is live. Idempotent; a request already final stays as it is. Raises
        NotFound when the organization has no such request."""
        request, call = self._tables.call_request, self._tables.call
        now = self._now()
        with self._writing(durable=True):
            row = request.get_or_none(
                (request.organization == org_id) & (request.request_id == request_id)
            )
            if row is None:
                raise NotFound(f"no request {request_id}")
            if row.status not in (RequestStatus.SUBMITTED.value, RequestStatus.ON_PROGRESS.value):
                return
            if row.cancelled_at is None:
                request.update(cancelled_at=now, updated_at=now).where(
                    request.id == row.id
                ).execute()
            self._cancel_calls(call.request == row.id, CANCELLED_CAUSE, now)
            self._finish_request_if_done(row.id, now)

    def set_organization_lines(self, org_id: str, change: LinesChange) -> None:
        """Store the organization's new line count, pace and/or line rule, in one transaction
        (NotFound if there is no such organization)."""
        organization = self._tables.organization
        values: dict[str, Any] = {}
        if change.max_concurrent_calls is not None:
            values["max_concurrent_calls"] = change.max_concurrent_calls
        if change.cps is not None:
            values["cps"] = change.cps
        if change.line_rule is not None:
            values["line_variable"], values["line_value"] = change.line_rule
        with self._writing(durable=True):
            if organization.get_or_none(organization.id == org_id) is None:
                raise NotFound(f"no organization {org_id}")
            if values:
                organization.update(values).where(organization.id == org_id).execute()

    def line_counts(self, org_id: str) -> LineCounts:
        """How many of the organization's calls are queued, and live on any node."""
        call = self._tables.call
        with self._session():
            rows = (
                call.select(call.status, peewee.fn.COUNT(call.id).alias("calls"))
                .where(
                    (call.organization == org_id)
                    & call.status.in_((CallStatus.QUEUED.value, *_ROBO_LIVE))
                )
                .group_by(call.status)
                .tuples()
            )
            by_status = dict(rows)
        return LineCounts(
            queued=by_status.get(CallStatus.QUEUED.value, 0),
            live=sum(by_status.get(status, 0) for status in _ROBO_LIVE),
        )

"""The repository's read-only queries for people watching: the dashboard and the metrics.

Part of :class:`robocall.store.repo.Repo` (a mixin, like ``store.dialing``). Every count comes
from ``request_counts`` (kept per request and status by a trigger), so a page or a scrape costs
one small query however many calls the requests hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import peewee

from robocall.store.models import Tables
from robocall.store.records import CallStatus, RequestRecord


@dataclass(frozen=True)
class RequestSummary:
    """A request and how many of its calls are in each status (statuses with none left out)."""

    request: RequestRecord
    counts: Mapping[CallStatus, int]


class OverviewQueries:
    """Recent requests and queue depths. Mixed into ``Repo``, which provides the plumbing."""

    _tables: Tables
    _session: Callable[[], AbstractContextManager[None]]
    _request_record: Callable[[Any], RequestRecord]

    def recent_requests(self, org_id: str, *, limit: int) -> list[RequestSummary]:
        """The organization's ``limit`` newest requests, newest first, with their counts."""
        call_request, request_count = self._tables.call_request, self._tables.request_count
        with self._session():
            rows = list(
                call_request.select()
                .where(call_request.organization == org_id)
                .order_by(call_request.id.desc())
                .limit(limit)
            )
            counts: dict[int, dict[CallStatus, int]] = {row.id: {} for row in rows}
            if rows:
                for seq, status, count in (
                    request_count.select(
                        request_count.request, request_count.status, request_count.count
                    )
                    .where(request_count.request.in_(list(counts)) & (request_count.count > 0))
                    .tuples()
                ):
                    counts[seq][CallStatus(status)] = count
        return [RequestSummary(self._request_record(row), counts[row.id]) for row in rows]

    def queued_calls_by_organization(self) -> dict[str, int]:
        """How many calls wait to be dialled, per organization that has any."""
        call_request, request_count = self._tables.call_request, self._tables.request_count
        total = peewee.fn.SUM(request_count.count)
        with self._session():
            rows = (
                request_count.select(call_request.organization.alias("org_id"), total.alias("n"))
                .join(call_request, on=(request_count.request == call_request.id))
                .where(
                    (request_count.status == CallStatus.QUEUED.value) & (request_count.count > 0)
                )
                .group_by(call_request.organization)
                .tuples()
            )
            return {org_id: int(queued) for org_id, queued in rows}

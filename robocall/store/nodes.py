"""The repository's queries for several dialer nodes on one database, and for crash recovery.

Part of :class:`robocall.store.repo.Repo` (a mixin, like ``store.dialing``). An organization's
lines are shared by every node that dials for it, so each claim first takes the organization's
lock (a PostgreSQL advisory lock held to the claim's commit) and reads which of its calls any
node has claimed and not yet ended: their channels count as lines in use even before this
node's Event Socket has seen them. Every claim records the node that made it, so a node that
restarts after a crash recovers its own calls and no one else's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

import peewee

from robocall.store.models import Tables
from robocall.store.records import CallStatus

# pg_advisory_xact_lock(class, hashtext(org)): one lock per organization, shared by all nodes.
DISPATCH_LOCK_CLASS = 0x726F6263  # "robc"
_UNFINISHED = (CallStatus.DIALING.value, CallStatus.ON_PROGRESS.value)

# Raw SQL on the dispatch path: peewee builds a query in about as long as PostgreSQL runs it.
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_UNFINISHED_SQL = (
    "SELECT channel_uuid FROM calls WHERE org_id = %s AND status IN (%s, %s)"
    " AND channel_uuid IS NOT NULL"
)

LinesBudget = Callable[[frozenset[str]], int]


@dataclass(frozen=True)
class UnfinishedCall:
    """A call a node claimed and had not finished when it stopped: what recovery needs."""

    call_id: int
    organization_id: str
    channel_uuid: str | None
    status: CallStatus
    answered_at: float | None  # epoch seconds


class NodeQueries:
    """Claim serialization and recovery. Mixed into ``Repo``, which provides the plumbing."""

    _db: peewee.Database
    _tables: Tables
    _postgresql: bool
    _session: Callable[[], AbstractContextManager[None]]

    def _lines_budget(self, organization_id: str, budget: LinesBudget) -> int:
        """Inside the claim's transaction: lock the organization's dispatch, then ask ``budget``
        how many calls may be claimed, given the channel uuids of its unfinished calls."""
        if not self._postgresql:
            # A SQLite database has one node, whose own books already hold all its dials.
            return budget(frozenset())
        # The lock is held until the claim commits: another node's claim for this organization
        # waits here and then sees these calls as dialing. Two statements in one round trip:
        # in READ COMMITTED each statement takes its own snapshot, so the select's is taken
        # after the lock is granted and sees every claim committed before it.
        cursor = self._db.execute_sql(
            f"{_LOCK_SQL}; {_UNFINISHED_SQL}",
            (DISPATCH_LOCK_CLASS, organization_id, organization_id, *_UNFINISHED),
        )
        return budget(frozenset(uuid for (uuid,) in cursor.fetchall()))

    def calls_to_recover(self, node_id: str) -> list[UnfinishedCall]:
        """This node's calls left ``dialing`` or ``onProgress`` (and those claimed before nodes
        were recorded, which no node owns)."""
        call, organization = self._tables.call, self._tables.organization
        found: list[UnfinishedCall] = []
        with self._session():
            organizations = [row.id for row in organization.select(organization.id)]
            for organization_id in organizations:
                # one probe of the (org, status, ...) index per organization
                rows = (
                    call.select(call.id, call.channel_uuid, call.status, call.answered_at)
                    .where(
                        (call.organization == organization_id)
                        & call.status.in_(_UNFINISHED)
                        & ((call.node == node_id) | call.node.is_null())
                    )
                    .order_by(call.id)
                    .tuples()
                )
                found.extend(
                    UnfinishedCall(
                        call_id=call_id,
                        organization_id=organization_id,
                        channel_uuid=channel_uuid,
                        status=CallStatus(status),
                        answered_at=_epoch(answered_at),
                    )
                    for call_id, channel_uuid, status, answered_at in rows
                )
        return found


def _epoch(stamp: datetime | str | None) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, str):  # SQLite hands back text when the column type is not declared
        stamp = datetime.fromisoformat(stamp)
    return stamp.replace(tzinfo=UTC).timestamp()

"""The repository's queries for several dialer nodes on one database, and for crash recovery.

Part of :class:`robocall.store.repo.Repo` (a mixin, like ``store.dialing``). An organization's
lines are shared by every node that dials for it, so each claim first takes the organization's
lock (a PostgreSQL advisory lock held to the claim's commit) and reads which of its calls any
node has claimed and not yet ended: their channels count as lines in use even before this
node's Event Socket has seen them. Every claim records the node that made it, so a node that
restarts after a crash recovers its own calls and no one else's.

A node id is one process: the ``nodes`` table (migration 6) holds each node's lease — host, pid,
when it started, its last heartbeat and a token only the holder knows. A process takes the lease
before it dials (refused while another live process holds it), renews it while it runs, and
gives it up on a clean stop; every claim checks, inside its own transaction, that the lease is
still this process's, so two processes on one database never both claim for one node.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from robocall.errors import LeaseLost, NodeBusy
from robocall.store.models import Tables
from robocall.store.records import CallStatus

# pg_advisory_xact_lock(class, hashtext(org)): one lock per organization, shared by all nodes.
DISPATCH_LOCK_CLASS = 0x726F6263  # "robc"
_UNFINISHED = (CallStatus.DIALING.value, CallStatus.ON_PROGRESS.value)

# Raw SQL on the dispatch path: peewee builds a query in about as long as PostgreSQL runs it.
# The claim (store.dialing) sends the lock, then in the same round trip one statement that
# reads, among the rest, the unfinished calls (a statement after the lock's, so its snapshot
# sees every claim committed before the lock was granted).
DISPATCH_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
UNFINISHED_CALLS_SQL = (
    "SELECT channel_uuid FROM calls WHERE org_id = %s AND status IN (%s, %s)"
    " AND channel_uuid IS NOT NULL"
)


def dispatch_lock_params(organization_id: str) -> tuple[Any, ...]:
    """The parameters of DISPATCH_LOCK_SQL."""
    return (DISPATCH_LOCK_CLASS, organization_id)


def unfinished_calls_params(organization_id: str) -> tuple[Any, ...]:
    """The parameters of UNFINISHED_CALLS_SQL."""
    return (organization_id, *_UNFINISHED)


LinesBudget = Callable[[frozenset[str]], int]


@dataclass(frozen=True)
class UnfinishedCall:
    """A call a node claimed and had not finished when it stopped: what recovery needs (and
    what its observers are told: request, destination, caller)."""

    call_id: int
    organization_id: str
    channel_uuid: str | None
    status: CallStatus
    answered_at: float | None  # epoch seconds
    request_id: str = ""
    phone: str = ""
    caller: str = ""
    switch: str = ""  # the pool's switch it was placed on ("" before migration 9)


@dataclass(frozen=True)
class NodeLease:
    """Who holds a node id: the process (host, pid) and when it started and last renewed."""

    node_id: str
    host: str
    pid: int
    token: str
    started_at: datetime
    heartbeat_at: datetime

    def describe(self) -> str:
        return (
            f"pid {self.pid} on {self.host}, started {self.started_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"last heartbeat {self.heartbeat_at:%H:%M:%S} UTC"
        )


def bind_lease_model(database: peewee.Database) -> Any:
    """The model of the ``nodes`` table (one row per node id: its lease)."""

    class Node(peewee.Model):
        node_id = peewee.CharField(primary_key=True, max_length=64)
        host = peewee.CharField(max_length=255)
        pid = peewee.IntegerField()
        token = peewee.CharField(max_length=64)
        started_at = peewee.DateTimeField()
        heartbeat_at = peewee.DateTimeField()

        class Meta:
            table_name = "nodes"

    Node._meta.set_database(database)
    return Node


class NodeQueries:
    """Claim serialization and recovery. Mixed into ``Repo``, which provides the plumbing."""

    _db: peewee.Database
    _tables: Tables
    _postgresql: bool
    _now: Callable[[], datetime]
    _session: Callable[[], AbstractContextManager[None]]
    _writing: Callable[..., AbstractContextManager[None]]

    # --- the node's lease -----------------------------------------------------------------------

    def take_lease(
        self,
        node_id: str,
        *,
        host: str,
        pid: int,
        token: str,
        expiry_seconds: float,
        holder_gone: Callable[[NodeLease], bool],
    ) -> NodeLease | None:
        """Make this process (``token``) the node's holder. Refused with NodeBusy while another
        holder's heartbeat is younger than ``expiry_seconds`` and ``holder_gone`` (its process
        is known dead) says no. Returns the lease taken over (None if there was none): a node
        that takes over recovers that holder's calls. Each write is one conditional statement,
        so of two processes racing for the node exactly one wins."""
        node = bind_lease_model(self._db)
        now = self._now()
        with self._writing(durable=True):
            node.insert(
                node_id=node_id, host=host, pid=pid, token=token, started_at=now,
                heartbeat_at=now,
            ).on_conflict_ignore().execute()
            row = node.get_or_none(node.node_id == node_id)
        if row is None:
            raise NodeBusy(f"node {node_id}: its lease vanished while it was taken")
        holder = _lease(row)
        if holder.token == token:
            if not self._postgresql:
                self._sole_node_of_sqlite(node, node_id, token, now, expiry_seconds, holder_gone)
            return None  # inserted just now (or held already by this very process)
        if not _expired(holder, now, expiry_seconds) and not holder_gone(holder):
            raise NodeBusy(f"node {node_id} is held by another live process ({holder.describe()})")
        with self._writing(durable=True):
            taken = (
                node.update(host=host, pid=pid, token=token, started_at=now, heartbeat_at=now)
                .where((node.node_id == node_id) & (node.token == holder.token))
                .execute()
            )
        if not taken:
            raise NodeBusy(f"node {node_id} was taken by another process just now")
        if not self._postgresql:
            self._sole_node_of_sqlite(node, node_id, token, now, expiry_seconds, holder_gone)
        return holder

    def _sole_node_of_sqlite(
        self,
        node: Any,
        node_id: str,
        token: str,
        now: datetime,
        expiry_seconds: float,
        holder_gone: Callable[[NodeLease], bool],
    ) -> None:
        """A SQLite database is one node's (its claims are not serialized across processes):
        another live node on it refuses this one, which gives its lease back."""
        with self._session():
            others = [_lease(row) for row in node.select().where(node.node_id != node_id)]
        for other in others:
            if not _expired(other, now, expiry_seconds) and not holder_gone(other):
                self.release_lease(node_id, token)
                raise NodeBusy(
                    f"this SQLite database is dialled by node {other.node_id} "
                    f"({other.describe()}); several nodes need PostgreSQL"
                )

    def renew_lease(self, node_id: str, token: str) -> bool:
        """The heartbeat: False when the lease is no longer this process's."""
        node = bind_lease_model(self._db)
        with self._writing(durable=False):
            renewed = (
                node.update(heartbeat_at=self._now())
                .where((node.node_id == node_id) & (node.token == token))
                .execute()
            )
        return bool(renewed)

    def release_lease(self, node_id: str, token: str) -> None:
        """A clean stop: the node id is free at once."""
        node = bind_lease_model(self._db)
        with self._writing(durable=True):
            node.delete().where((node.node_id == node_id) & (node.token == token)).execute()

    def lease_of(self, node_id: str) -> NodeLease | None:
        """The node's lease as stored, if any."""
        node = bind_lease_model(self._db)
        with self._session():
            row = node.get_or_none(node.node_id == node_id)
        return None if row is None else _lease(row)

    def _check_lease(self, node_id: str, token: str) -> None:
        """Inside a claim's transaction: the claim is made only while the lease is ours."""
        row = self._db.execute_sql(
            f"SELECT token FROM nodes WHERE node_id = {self._db.param}", (node_id,)
        ).fetchone()
        self._check_holder(node_id, token, row[0] if row is not None else None)

    @staticmethod
    def _check_holder(node_id: str, token: str, holder: str | None) -> None:
        """The claim is made only while the lease is ours (``holder`` read in its transaction)."""
        if holder != token:
            raise LeaseLost(f"node {node_id}: this process no longer holds its lease")

    # --- recovery -------------------------------------------------------------------------------

    def calls_to_recover(self, node_id: str) -> list[UnfinishedCall]:
        """This node's calls left ``dialing`` or ``onProgress`` (and those claimed before nodes
        were recorded, which no node owns)."""
        call, organization = self._tables.call, self._tables.organization
        request = self._tables.call_request
        found: list[UnfinishedCall] = []
        with self._session():
            organizations = [row.id for row in organization.select(organization.id)]
            for organization_id in organizations:
                # one probe of the (org, status, ...) index per organization
                rows = (
                    call.select(call.id, call.channel_uuid, call.status, call.answered_at,
                                request.request_id, call.phone, call.caller, call.switch)
                    .join(request, on=(call.request == request.id))
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
                        request_id=request_id,
                        phone=phone,
                        caller=caller,
                        switch=switch or "",
                    )
                    for call_id, channel_uuid, status, answered_at, request_id, phone, caller,
                    switch in rows
                )
        return found


def _expired(lease: NodeLease, now: datetime, expiry_seconds: float) -> bool:
    return now - lease.heartbeat_at > timedelta(seconds=expiry_seconds)


def _lease(row: Any) -> NodeLease:
    return NodeLease(
        node_id=row.node_id,
        host=row.host,
        pid=row.pid,
        token=row.token,
        started_at=_naive(row.started_at),
        heartbeat_at=_naive(row.heartbeat_at),
    )


def _naive(stamp: datetime | str) -> datetime:
    # SQLite hands back text when peewee cannot tell the column's type
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp


def _epoch(stamp: datetime | str | None) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, str):  # SQLite hands back text when the column type is not declared
        stamp = datetime.fromisoformat(stamp)
    return stamp.replace(tzinfo=UTC).timestamp()

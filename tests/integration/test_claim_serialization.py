"""An organization's claims are serialized across nodes through PostgreSQL: a claim that waited
for another's lock sees that claim's calls as unfinished, and so counts their lines."""

from __future__ import annotations

import uuid

import gevent
import gevent.event
import psycopg2
import pytest

from robocall import bootstrap
from robocall.store.repo import Repo
from tests.support.api_server import queue_transfer_calls
from tests.support.service import wait_for

# Sessions of this database waiting for an advisory lock (the claim's per-organization lock).
_LOCK_WAITERS_SQL = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND NOT granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _lock_waiters(database_url: str) -> int:
    """How many sessions wait for an advisory lock, as PostgreSQL itself reports them."""
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_WAITERS_SQL)
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def test_a_waiting_claim_sees_the_claim_it_waited_for(repo: Repo, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("serialization across nodes is PostgreSQL's")
    # given an organization with queued calls, and a first node's claim holding its lock
    org = bootstrap.create_organization(repo, "serial", lines=4)
    queue_transfer_calls(repo, org.id, 4)
    first_holds_lock = gevent.event.Event()
    release_first = gevent.event.Event()
    first_uuid = str(uuid.uuid4())
    seen_by_second: list[frozenset[str]] = []

    def first_budget(unfinished: frozenset[str]) -> int:
        first_holds_lock.set()
        release_first.wait(10)
        return 4 - len(unfinished)

    def second_budget(unfinished: frozenset[str]) -> int:
        seen_by_second.append(unfinished)
        return 4 - len(unfinished)

    first = gevent.spawn(repo.claim_calls, org.id, [first_uuid], node_id="a", budget=first_budget)
    assert first_holds_lock.wait(10)
    # when a second node claims for the same organization meanwhile
    second = gevent.spawn(repo.claim_calls, org.id, [str(uuid.uuid4())], node_id="b",
                          budget=second_budget)
    # then PostgreSQL shows it waiting for the lock, and it has not counted without the first
    wait_for(lambda: _lock_waiters(database_url) == 1, "the second claim to wait for the lock",
             poll_seconds=0.05)
    assert seen_by_second == []
    release_first.set()
    first_claimed = first.get(timeout=10)
    second_claimed = second.get(timeout=10)
    # and once the first commits, the second counts the first's dial as a line in use
    assert [c.ticket.channel_uuid for c in first_claimed] == [first_uuid]
    assert seen_by_second == [frozenset({first_uuid})]
    assert len(second_claimed) == 1
    assert second_claimed[0].ticket.call_id != first_claimed[0].ticket.call_id

"""Round trips to PostgreSQL: a transaction's BEGIN goes with its first statement, a claim's
last writes with its COMMIT, and a claim is two round trips in all (each one, on a machine whose
cores are busy, a wake-up of PostgreSQL's backend and of robocall)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import peewee
import psycopg2
import pytest

from robocall import bootstrap
from robocall.store import db as store_db
from robocall.store.repo import Repo
from tests.support.api_server import queue_transfer_calls


@pytest.fixture
def pg(repo: Repo, database_url: str) -> Repo:
    if not database_url.startswith("postgresql"):
        pytest.skip("round trips to PostgreSQL")
    return repo


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every message robocall's PostgreSQL cursors send from now on (one round trip each)."""
    messages: list[str] = []
    execute = store_db._LazyBeginCursor.execute

    def counting(self: Any, query: Any, vars: Any = None) -> Any:  # noqa: A002
        before = self.connection.pending_begin
        result = execute(self, query, vars)
        messages.append(f"{before}; {query}" if before and isinstance(query, str) else query)
        return result

    monkeypatch.setattr(store_db._LazyBeginCursor, "execute", counting)
    yield messages


def _scratch_table(repo: Repo) -> str:
    name = f"scratch_{secrets.token_hex(4)}"
    with repo._session():
        repo.database.execute_sql(f"CREATE TABLE {name} (n INTEGER)")
    return name


def _count(repo: Repo, table: str) -> int:
    with repo._session():
        return int(repo.database.execute_sql(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_transaction_begins_with_its_first_statement(pg: Repo, sent: list[str]) -> None:
    table = _scratch_table(pg)
    sent.clear()
    # when a transaction writes and then fails
    with pytest.raises(RuntimeError), pg._writing():
        pg.database.execute_sql(f"INSERT INTO {table} VALUES (1)")
        raise RuntimeError("undo")
    # then its BEGIN went with its first statement, and the write was undone with it
    assert sent == [f"BEGIN; INSERT INTO {table} VALUES (1)", "ROLLBACK"]
    assert _count(pg, table) == 0
    # and a statement sent past execute_sql is inside its transaction too
    with pytest.raises(RuntimeError), pg._writing():
        pg.database.cursor().executemany(f"INSERT INTO {table} VALUES (%s)", [(1,), (2,)])
        raise RuntimeError("undo")
    assert _count(pg, table) == 0


def test_a_transaction_that_sent_nothing_costs_nothing(pg: Repo, sent: list[str]) -> None:
    with pg._writing():
        pass
    with pytest.raises(RuntimeError), pg._writing():
        raise RuntimeError("undo")
    assert sent == []


def test_the_last_statement_carries_the_commit(pg: Repo, sent: list[str]) -> None:
    table = _scratch_table(pg)
    sent.clear()
    with pg._writing():
        pg.database.execute_sql(f"INSERT INTO {table} VALUES (1)")
        pg.database.commit_with(f"INSERT INTO {table} VALUES (%s)", [2])
    assert sent == [f"BEGIN; INSERT INTO {table} VALUES (1)",
                    f"INSERT INTO {table} VALUES (%s); COMMIT"]
    assert _count(pg, table) == 2
    # and nothing can be sent after it, where it would run outside its transaction
    with pytest.raises(peewee.InterfaceError), pg._writing():
        pg.database.commit_with(f"INSERT INTO {table} VALUES (%s)", [3])
        pg.database.execute_sql(f"INSERT INTO {table} VALUES (4)")
    assert _count(pg, table) == 3
    # and a connection back in the pool begins nothing of its own
    with pg._session():
        assert pg.database.connection().info.transaction_status == \
            psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_a_claim_is_two_round_trips(pg: Repo, sent: list[str]) -> None:
    # given an organization with a new request, and a node holding its lease
    org = bootstrap.create_organization(pg, f"trips {secrets.token_hex(3)}", lines=10)
    queue_transfer_calls(pg, org.id, 5, phone_prefix="+658500",
                         call_flow_json='{"f": 1}')
    token = secrets.token_hex(8)
    pg.take_lease("node-trips", host="h", pid=1, token=token, expiry_seconds=30,
                  holder_gone=lambda _: False)
    sent.clear()
    seen: list[frozenset[str]] = []

    def budget(unfinished: frozenset[str]) -> int:
        seen.append(unfinished)
        return 3

    # when the node claims for four lines, its budget allowing three
    claimed = pg.claim_calls(org.id, [str(uuid.uuid4()) for _ in range(4)], node_id="node-trips",
                             budget=budget, lease_token=token)
    # then the lock and every read went in one round trip, the writes and COMMIT in another
    assert len(sent) == 2
    assert sent[0].startswith("BEGIN; SELECT pg_advisory_xact_lock")
    assert sent[1].startswith("UPDATE calls") and sent[1].endswith("; COMMIT")
    assert "UPDATE call_requests" in sent[1]  # the request's first claim moved it on
    assert [c.ticket.phone for c in claimed] == [f"+658500{i:04d}" for i in range(3)]
    assert {c.call_flow_json for c in claimed} == {'{"f": 1}'}
    # and the next claim counts the three as unfinished, and takes the next two in order
    sent.clear()
    more = pg.claim_calls(org.id, [str(uuid.uuid4()) for _ in range(4)], node_id="node-trips",
                          budget=budget, lease_token=token)
    assert seen[1] == frozenset(c.ticket.channel_uuid for c in claimed)
    assert [c.ticket.phone for c in more] == [f"+658500{i:04d}" for i in (3, 4)]
    assert len(sent) == 2 and "call_requests" not in sent[1]
    # and a claim finding nothing queued is two round trips too (reads, then COMMIT)
    sent.clear()
    assert pg.claim_calls(org.id, [str(uuid.uuid4())], node_id="node-trips", budget=budget,
                          lease_token=token) == []
    assert len(sent) == 2 and sent[1] == "COMMIT"

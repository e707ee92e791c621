"""The store's side of the extensions on SQLite and PostgreSQL, on a clock the test holds:
retry requeue (only after a definite outcome), claims skipping calls not yet due, a cancel
racing an originate that never left, and migration 2 on a database that predates it."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path

import peewee
import pytest

from robocall import bootstrap
from robocall.flow.model import CallFlow, CallRequest, Destination, Message, Play
from robocall.flow.parse import parse_call_request, parse_retry
from robocall.store.db import open_database
from robocall.store.migrations import _V2_COLUMNS, current_version, migrate
from robocall.store.repo import Repo
from tests.support import api_server
from tests.support.clock import START, SettableClock

FLOW_JSON = '{"steps": [{"name": "play", "message": {"msg": "hello"}}]}'
RETRY_ALL = {"maxAttempts": 3, "on": ["busy", "no_answer", "failed"], "backoffSeconds": 300}


@pytest.fixture
def clocked(repo: Repo) -> tuple[Repo, SettableClock]:
    clock = SettableClock(START)
    return Repo(repo.database, clock=clock), clock


def _request(store: Repo, phones: int, retry: dict | None = None) -> tuple[str, str]:
    org_id = bootstrap.create_organization(store, f"org {secrets.token_hex(3)}", lines=6).id
    request = CallRequest(
        request_id=f"r-{secrets.token_hex(3)}",
        destinations=tuple(
            Destination(phone=f"+658100{index:04d}", caller="+6582674904", properties={})
            for index in range(phones)
        ),
        call_flow=CallFlow(steps=(Play(message=Message(text="hello")),)),
        retry=parse_retry(retry) if retry else None,
    )
    store.submit_request(org_id, request, call_flow_json=FLOW_JSON,
                         body_hash=secrets.token_hex(8),
                         retry_json=json.dumps(retry) if retry else None)
    return org_id, request.request_id


def _uuids(count: int) -> list[str]:
    return [f"uuid-{secrets.token_hex(6)}" for _ in range(count)]


def _end(store: Repo, call_id: int, cause: str) -> bool:
    return store.call_ended(call_id, status="failed", hangup_cause=cause,
                            ended_at=START.timestamp(), duration_seconds=None)


def test_a_busy_attempt_is_requeued_and_claimed_only_once_due(clocked):
    store, clock = clocked
    org_id, request_id = _request(store, 2, RETRY_ALL)
    first = store.claim_calls(org_id, _uuids(1))[0].ticket
    # when its first attempt ends busy
    assert _end(store, first.call_id, "USER_BUSY") is False
    # then it is queued again, due after the backoff, and a claim now passes it over
    call = store.request_status(org_id, request_id, limit=10).calls[0]
    assert (call.status.value, call.attempt) == ("queued", 1)
    assert call.next_attempt_at == (START + timedelta(seconds=300)).replace(tzinfo=None)
    skipped = store.claim_calls(org_id, _uuids(2))
    assert [c.ticket.call_id for c in skipped] == [call.id + 1]
    assert store.claim_calls(org_id, _uuids(1)) == []
    # when the backoff has passed
    clock.advance(300)
    again = store.claim_calls(org_id, _uuids(1))
    # then it is claimed for its second attempt
    assert [c.ticket.call_id for c in again] == [first.call_id]
    assert store.request_status(org_id, request_id, limit=10).calls[0].attempt == 2


@pytest.mark.parametrize("cause", ["SWITCH_CONNECTION_LOST", "RECOVERY_ON_TIMER_EXPIRE",
                                   "UNKNOWN"])
def test_an_attempt_of_unknown_fate_is_never_dialled_again(clocked, cause):
    # given a request that retries every outcome
    store, _ = clocked
    org_id, request_id = _request(store, 1, RETRY_ALL)
    ticket = store.claim_calls(org_id, _uuids(1))[0].ticket
    # when its attempt ends without the switch saying how (the callee may have been rung)
    completed = _end(store, ticket.call_id, cause)
    # then the call is final, and so is the request
    assert completed is True
    page = store.request_status(org_id, request_id, limit=10)
    assert page.calls[0].status.value == "failed"
    assert page.request.status.value == "completed"
    assert store.claim_calls(org_id, _uuids(1)) == []


def test_a_cancel_while_the_originate_never_left_cancels_the_call(clocked):
    # given a claimed call whose request the client cancels before the originate goes out
    store, _ = clocked
    org_id, request_id = _request(store, 1)
    ticket = store.claim_calls(org_id, _uuids(1))[0].ticket
    store.cancel_request(org_id, request_id)
    assert store.request_status(org_id, request_id, limit=1).request.status.value == "onProgress"
    # when the runner finds the originate was never sent
    store.call_not_dialled(ticket.call_id)
    # then the call is cancelled rather than queued again, and the request with it
    page = store.request_status(org_id, request_id, limit=1)
    assert (page.calls[0].status.value, page.calls[0].hangup_cause) == (
        "cancelled", "CANCELLED_BY_CLIENT")
    assert page.request.status.value == "cancelled"
    assert store.claim_calls(org_id, _uuids(1)) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty database of its own (the test alters its schema)."""
    with api_server.fresh_database(request.param, tmp_path) as url:
        database = open_database(url)
        try:
            yield database
        finally:
            database.close_all()


def test_migration_2_adds_its_columns_to_a_database_at_version_1(fresh_database):
    # given a database as version 1 left it (today's tables without migration 2's columns)
    database: peewee.Database = fresh_database
    migrate(database)
    with database.connection_context():
        for table, column, _ in _V2_COLUMNS:
            database.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        database.execute_sql("DELETE FROM schema_version WHERE version = 2")
        assert current_version(database) == 1
    # when robocall migrates it
    assert migrate(database)[0] == 2
    # then every column is there, and the schema is at version 2 (or later)
    with database.connection_context():
        for table, column, _ in _V2_COLUMNS:
            assert column in {c.name for c in database.get_columns(table)}
        assert current_version(database) >= 2
    assert migrate(database) == []


def _windowed(store: Repo, phones: list[str], window: dict) -> tuple[str, str]:
    org_id = bootstrap.create_organization(store, f"org {secrets.token_hex(3)}", lines=6).id
    body = {"requestId": f"w-{secrets.token_hex(3)}", "callFlow": json.loads(FLOW_JSON),
            "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
            "window": window}
    request = parse_call_request(body, languages={"en"}, max_destinations=100)
    store.submit_request(org_id, request, call_flow_json=FLOW_JSON,
                         body_hash=secrets.token_hex(8), window_json=json.dumps(window))
    return org_id, body["requestId"]


def test_a_closed_window_moves_on_every_call_of_its_zone_at_once(clocked):
    # given (at 16:30 in Singapore, 08:30 in London) Singapore numbers behind a London one,
    # and daily hours 17:00-18:00 in each destination's zone
    store, clock = clocked
    singapore = ["+6591230001", "6591230002", "+6591230003"]
    org_id, request_id = _windowed(store, ["+442071234567", *singapore], {
        "daily": {"from": "17:00", "to": "18:00", "timeZone": "destination"}})
    # when one call is claimed
    assert store.claim_calls(org_id, _uuids(1)) == []
    # then every call was moved on to its zone's next opening, the Singapore ones together
    calls = {c.phone: c for c in store.request_status(org_id, request_id, limit=10).calls}
    assert calls["+442071234567"].next_attempt_at == START.replace(hour=17, minute=0,
                                                                   tzinfo=None)
    assert {calls[p].next_attempt_at for p in singapore} == {
        START.replace(hour=9, minute=0, tzinfo=None)}
    # when Singapore's hour comes
    clock.advance(30 * 60)
    claimed = store.claim_calls(org_id, _uuids(6))
    # then its three calls are claimed, in destination order, and London's waits
    assert [c.ticket.phone for c in claimed] == singapore


def test_a_window_in_a_fixed_zone_ends_in_cancellation_after_not_after(clocked):
    store, clock = clocked
    org_id, request_id = _windowed(store, ["+6591230011", "+442071234568"], {
        "notAfter": "2026-03-02T10:00:00Z",
        "daily": {"from": "20:00", "to": "21:00", "timeZone": "Asia/Singapore"}})
    # when the dialer looks at 08:30 UTC: the next opening (12:00 UTC) is past notAfter
    assert store.claim_calls(org_id, _uuids(2)) == []
    # then the calls are cancelled with the cause, and the request is over
    page = store.request_status(org_id, request_id, limit=10)
    assert {(c.status.value, c.hangup_cause) for c in page.calls} == {
        ("cancelled", "CALLING_WINDOW_CLOSED")}
    assert page.request.status.value == "completed"

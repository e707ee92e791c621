"""The store on SQLite and PostgreSQL: migrations, atomic submission, keys, counts, paging."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import gevent
import pytest

from robocall import bootstrap
from robocall.errors import Conflict, NotFound
from robocall.flow.model import CallFlow, CallRequest, Destination, Message, Play
from robocall.store.access import hash_key
from robocall.store.migrations import MIGRATIONS, current_version, migrate
from robocall.store.records import CallTicket
from robocall.store.repo import INSERT_CHUNK_ROWS, Repo
from robocall.store.webhooks import AttemptOutcome, scrub_receiver_text

FLOW = CallFlow(steps=(Play(message=Message(text="hello {{name}}")),))


def _request(request_id: str, count: int) -> CallRequest:
    return CallRequest(
        request_id=request_id,
        destinations=tuple(
            Destination(phone=f"+8490{index:07d}", caller="+6582674904",
                        properties={"name": f"n{index}"})
            for index in range(count)
        ),
        call_flow=FLOW,
    )


def _org(repo: Repo) -> str:
    return bootstrap.create_organization(repo, f"org {secrets.token_hex(3)}", lines=2).id


def _sql(repo: Repo, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run SQL as another module would (a dispatcher writing statuses, an admin revoking)."""
    database = repo.database
    with database.connection_context():
        cursor = database.execute_sql(sql.replace("?", database.param), params)
        return list(cursor.fetchall()) if cursor.description else []


def test_migrations_are_recorded_and_run_once(repo: Repo):
    # given the session's migrated database
    # when migrations run again
    applied = migrate(repo.database)
    # then nothing is applied twice and the version is the newest
    assert applied == []
    with repo.database.connection_context():
        assert current_version(repo.database) == MIGRATIONS[-1][0]


def test_a_submitted_request_stores_every_destination_in_order(repo: Repo):
    # given an organization
    org_id = _org(repo)
    # when a request of 25 destinations is submitted
    record, created = repo.submit_request(org_id, _request("in-order", 25),
                                          call_flow_json="{}", body_hash="h1")
    # then all are stored, queued, in submission order
    assert created and record.total == 25 and record.status.value == "submitted"
    page = repo.request_status(org_id, "in-order", limit=100)
    assert [call.position for call in page.calls] == list(range(25))
    assert [call.phone for call in page.calls] == [f"+8490{i:07d}" for i in range(25)]
    assert page.counts == {"queued": 25}
    assert page.next_after_id is None


def test_a_failure_mid_insert_leaves_nothing_stored(repo: Repo):
    # given a request whose last destination cannot be stored, after a whole chunk went in
    org_id = _org(repo)
    request = _request("half", INSERT_CHUNK_ROWS + 1)
    broken = Destination(phone="+84901", caller="+6582674904", properties={"name": {1, 2}})
    request = CallRequest(request_id="half", call_flow=FLOW,
                          destinations=request.destinations[:-1] + (broken,))
    # when it is submitted, it fails
    with pytest.raises(TypeError):
        repo.submit_request(org_id, request, call_flow_json="{}", body_hash="h")
    # then neither the request nor any of its calls exists
    assert repo.find_request(org_id, "half") is None
    assert _sql(repo, "SELECT COUNT(*) FROM calls WHERE org_id = ?", org_id) == [(0,)]


def test_the_same_request_id_and_body_returns_the_stored_request(repo: Repo):
    org_id = _org(repo)
    first, created = repo.submit_request(org_id, _request("again", 3), call_flow_json="{}",
                                         body_hash="same")
    second, created_again = repo.submit_request(org_id, _request("again", 3),
                                                call_flow_json="{}", body_hash="same")
    assert created and not created_again
    assert second == first
    assert _sql(repo, "SELECT COUNT(*) FROM calls WHERE org_id = ?", org_id) == [(3,)]


def test_the_same_request_id_with_another_body_conflicts(repo: Repo):
    org_id = _org(repo)
    repo.submit_request(org_id, _request("other", 3), call_flow_json="{}", body_hash="one")
    with pytest.raises(Conflict):
        repo.submit_request(org_id, _request("other", 4), call_flow_json="{}", body_hash="two")
    assert repo.request_status(org_id, "other", limit=10).request.total == 3


def test_requests_are_sequenced_in_submission_order(repo: Repo):
    org_id = _org(repo)
    first, _ = repo.submit_request(org_id, _request("seq-a", 1), call_flow_json="{}",
                                   body_hash="a")
    second, _ = repo.submit_request(org_id, _request("seq-b", 1), call_flow_json="{}",
                                    body_hash="b")
    assert second.seq > first.seq


def test_counts_follow_every_status_change(repo: Repo):
    # given a request of 5 queued calls
    org_id = _org(repo)
    record, _ = repo.submit_request(org_id, _request("counted", 5), call_flow_json="{}",
                                    body_hash="c")
    calls = repo.request_status(org_id, "counted", limit=5).calls
    # when two are dialled and one of them completes (whoever writes the change)
    _sql(repo, "UPDATE calls SET status = 'dialing' WHERE id IN (?, ?)", calls[0].id, calls[1].id)
    _sql(repo, "UPDATE calls SET status = 'completed' WHERE id = ?", calls[0].id)
    _sql(repo, "UPDATE calls SET status = 'completed' WHERE id = ?", calls[0].id)  # no change
    # then the counts say so, and only non-empty statuses are listed
    page = repo.request_status(org_id, "counted", limit=5)
    assert page.counts == {"queued": 3, "dialing": 1, "completed": 1}
    assert [call.status.value for call in page.calls][:2] == ["completed", "dialing"]


def test_pages_continue_after_the_last_call_id(repo: Repo):
    org_id = _org(repo)
    repo.submit_request(org_id, _request("pages", 7), call_flow_json="{}", body_hash="p")
    first = repo.request_status(org_id, "pages", limit=3)
    second = repo.request_status(org_id, "pages", limit=3, after_call_id=first.next_after_id)
    third = repo.request_status(org_id, "pages", limit=3, after_call_id=second.next_after_id)
    positions = [c.position for page in (first, second, third) for c in page.calls]
    assert positions == list(range(7))
    assert third.next_after_id is None


def test_a_request_is_not_found_for_another_organization(repo: Repo):
    owner, stranger = _org(repo), _org(repo)
    repo.submit_request(owner, _request("mine", 1), call_flow_json="{}", body_hash="m")
    with pytest.raises(NotFound):
        repo.request_status(stranger, "mine", limit=10)


def test_keys_are_stored_only_as_sha256(repo: Repo):
    # given a new key
    org_id = _org(repo)
    key = bootstrap.create_api_key(repo, org_id)
    # then the table holds its hash, never the key, and the key finds its organization
    stored = _sql(repo, "SELECT key_hash FROM api_keys WHERE org_id = ?", org_id)
    assert stored == [(hash_key(key),)]
    assert key not in str(stored)
    found = repo.organization_for_key(key)
    assert found is not None and found.id == org_id
    assert repo.organization_for_key(key + "x") is None


def test_a_revoked_key_finds_nothing(repo: Repo):
    org_id = _org(repo)
    key = bootstrap.create_api_key(repo, org_id)
    _sql(repo, "UPDATE api_keys SET revoked_at = created_at WHERE org_id = ?", org_id)
    assert repo.organization_for_key(key) is None


def test_a_key_for_a_missing_organization_is_refused(repo: Repo):
    with pytest.raises(NotFound):
        bootstrap.create_api_key(repo, "org_missing")


def test_an_organizations_lines_default_to_its_accountcode(repo: Repo):
    org = bootstrap.create_organization(repo, "Acme", lines=6, cps=2.5)
    stored = repo.get_organization(org.id)
    assert stored == org
    assert (stored.max_concurrent_calls, stored.cps) == (6, 2.5)
    assert (stored.line_variable, stored.line_value) == ("accountcode", org.id)


def test_the_hub_keeps_running_during_a_large_insert(repo: Repo):
    # given a greenlet that counts while a request of three chunks is stored
    org_id = _org(repo)
    ticks: list[int] = []

    def ticker() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0)

    counter = gevent.spawn(ticker)
    gevent.sleep(0)
    started = len(ticks)
    # when the request is stored
    repo.submit_request(org_id, _request("big", 3 * INSERT_CHUNK_ROWS), call_flow_json="{}",
                        body_hash="big")
    during = len(ticks) - started
    counter.kill()
    # then the other greenlet ran between the chunks
    assert during >= 2


def test_concurrent_submissions_from_greenlets_all_succeed(repo: Repo):
    # given one organization and eight greenlets submitting at once
    org_id = _org(repo)
    jobs = [
        gevent.spawn(repo.submit_request, org_id, _request(f"together-{n}", 50),
                     call_flow_json="{}", body_hash=str(n))
        for n in range(8)
    ]
    gevent.joinall(jobs, raise_error=True)
    # then all are stored, whole
    assert all(job.value[1] for job in jobs)
    assert _sql(repo, "SELECT COUNT(*) FROM calls WHERE org_id = ?", org_id) == [(400,)]


def test_migration_7_keeps_only_the_status_of_logged_receiver_answers(repo: Repo):
    # given a delivery logged the way robocall did before (an excerpt of the answer kept)
    org_id = _org(repo)
    ticket = CallTicket(call_id=1, request_id="scrub", organization_id=org_id, phone="+6580000001",
                        caller="+6580000002", properties={}, channel_uuid="u",
                        line_variable=("accountcode", org_id), record=False)
    now = datetime.now(UTC)
    repo.enqueue_webhook(ticket, event="call.dialing", event_id="e1", url="http://x/", body="{}",
                         at=now)
    [row], _ = repo.webhook_deliveries(org_id, request_id="scrub", limit=10)
    for status, error in ((500, "HTTP 500: internal: secret stack trace"),
                          (None, "ConnectionRefusedError: refused"),
                          (307, "redirect to http://10.0.0.1/admin not followed"),
                          (None, "BadStatusLine: -ERR secret-value")):
        repo.record_webhook_attempt(row.id, AttemptOutcome(
            at=now, http_status=status, error=error, delivered=False, next_attempt_at=now))
    repo.record_webhook_attempt(row.id, AttemptOutcome(
        at=now, http_status=503, error="HTTP 503: busy, says the receiver", delivered=False,
        next_attempt_at=now))
    # when migration 7's scrub runs
    scrub_receiver_text(repo.database)
    # then only statuses (and robocall's own errors) are left
    [row], _ = repo.webhook_deliveries(org_id, request_id="scrub", limit=10)
    assert row.last_error == "HTTP 503"
    assert [entry["error"] for entry in row.attempt_log] == [
        "HTTP 500", "ConnectionRefusedError: refused", "HTTP 307",
        "BadStatusLine: the answer is not valid HTTP", "HTTP 503",
    ]

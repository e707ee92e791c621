"""Group commit of calls' progress, on SQLite and PostgreSQL: many calls' writes in one
transaction, each call's in order, the stored report the same as written one at a time."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace

import gevent
import pytest

from robocall import bootstrap
from robocall.calls.progress import ProgressWriter
from robocall.flow.actions import StepResult
from robocall.flow.model import CallFlow, CallRequest, Destination, Message, Play
from robocall.flow.status import CallState, DialResult, Leg, LegKind, StepName, StepStatus
from robocall.store.records import CallStatus, RequestStatus
from robocall.store.repo import Repo

FLOW = CallFlow(steps=(Play(message=Message(text="hello")),))
FLOW_JSON = '{"steps": [{"name": "play", "message": {"msg": "hello"}}]}'
PLAYED = StepResult("1", StepName.PLAY, StepStatus.SUCCESS_OK, CallState.ENDED)


def _claimed(
    repo: Repo, request_id: str, count: int, org_id: str | None = None,
    retry: dict[str, object] | None = None,
) -> tuple[str, list[int]]:
    if org_id is None:
        org_id = bootstrap.create_organization(repo, f"org {secrets.token_hex(3)}", lines=50).id
    request = CallRequest(
        request_id=request_id,
        destinations=tuple(
            Destination(phone=f"+6580{index:06d}", caller="+6582674904", properties={})
            for index in range(count)
        ),
        call_flow=FLOW,
    )
    repo.submit_request(org_id, request, call_flow_json=FLOW_JSON, body_hash="h",
                        retry_json=json.dumps(retry) if retry else None)
    claimed = repo.claim_calls(org_id, [f"uuid-{i}-{secrets.token_hex(4)}" for i in range(count)])
    return org_id, [call.ticket.call_id for call in claimed]


def _raw_reports(repo: Repo, call_ids: list[int]) -> dict[int, tuple[str, str]]:
    call = repo._tables.call
    with repo._session():
        rows = call.select(call.id, call.steps, call.monitor).where(call.id.in_(call_ids))
        return {row.id: (row.steps, row.monitor) for row in rows}


def test_one_transaction_writes_many_calls_progress_as_json_dumps_would(repo: Repo):
    # given three claimed calls
    org_id, call_ids = _claimed(repo, "batch", 3)
    now = time.time()
    legs = {call_id: Leg(f"leg-{call_id}", LegKind.CALL, "+65") for call_id in call_ids}
    transfer = Leg("other-leg", LegKind.TRANSFER, "+6591234567")
    # when their moments are written in one batch, interleaved as they would come
    writes = []
    for call_id in call_ids:
        writes.append(("call_leg", (call_id, legs[call_id])))
    for call_id in call_ids:
        writes += [("call_answered", (call_id, now)), ("append_step", (call_id, PLAYED))]
    writes.append(("call_leg", (call_ids[0], transfer)))
    results = repo.write_progress(writes)
    # then every write succeeded, and each call's report is exactly the text json.dumps makes
    assert results == [None] * len(writes)
    raw = _raw_reports(repo, call_ids)
    played = {"step_id": "1", "step_name": "play", "status": "success_ok",
              "call_state": "ended", "call_status": "answered"}
    for call_id in call_ids:
        steps, monitor = raw[call_id]
        assert steps == json.dumps([played])
        expected_legs = [{"uuid": f"leg-{call_id}", "kind": "call", "dest": "+65"}]
        if call_id == call_ids[0]:
            expected_legs.append({"uuid": "other-leg", "kind": "transfer", "dest": "+6591234567"})
        assert monitor == json.dumps(expected_legs)
    page = repo.request_status(org_id, "batch", limit=10)
    assert {call.status for call in page.calls} == {CallStatus.ON_PROGRESS}
    assert page.calls[0].monitor == (legs[call_ids[0]], transfer)


def test_the_last_calls_end_completes_the_request_in_the_same_batch(repo: Repo):
    org_id, call_ids = _claimed(repo, "ends", 2)
    now = time.time()
    ended = [
        ("call_ended", (call_id, CallStatus.COMPLETED, "NORMAL_CLEARING", now, 1.5))
        for call_id in call_ids
    ]
    # only the second end finds no live call left
    assert repo.write_progress(ended) == [False, True]
    page = repo.request_status(org_id, "ends", limit=10)
    assert page.request.status is RequestStatus.COMPLETED
    assert dict(page.counts) == {"completed": 2}
    assert {call.duration_seconds for call in page.calls} == {1.5}


def test_a_batch_of_ends_of_several_requests_tells_which_end_finished_which(repo: Repo):
    # given request A of three calls, and request B of one call whose busy attempt is retried
    org_id, [a1, a2, a3] = _claimed(repo, "mixed-a", 3)
    _, [b1] = _claimed(repo, "mixed-b", 1, org_id=org_id,
                       retry={"maxAttempts": 2, "on": ["busy"], "backoffSeconds": 0})
    now = time.time()
    # when A's calls and B's end in one batch, with other calls' writes between them
    writes = [
        ("call_ended", (a1, CallStatus.COMPLETED, "NORMAL_CLEARING", now, 2.0)),
        ("call_answered", (a2, now)),
        ("call_ended", (b1, CallStatus.FAILED, "USER_BUSY", now, None)),
        ("call_ended", (a2, CallStatus.COMPLETED, "NORMAL_CLEARING", now, 1.0)),
        ("append_step", (a3, PLAYED)),
        ("call_ended", (a3, CallStatus.FAILED, "NO_ANSWER", now, None)),
    ]
    results = repo.write_progress(writes)
    # then only A's last end made a request final: B's busy call went back to the queue
    assert results == [False, None, False, False, None, True]
    a = repo.request_status(org_id, "mixed-a", limit=10)
    assert a.request.status is RequestStatus.COMPLETED
    assert dict(a.counts) == {"completed": 2, "failed": 1}
    calls = {call.id: call for call in a.calls}
    assert calls[a3].steps == (PLAYED,) and calls[a3].hangup_cause == "NO_ANSWER"
    b = repo.request_status(org_id, "mixed-b", limit=10)
    assert b.request.status is not RequestStatus.COMPLETED
    assert [call.status for call in b.calls] == [CallStatus.QUEUED]
    # and B's retry, ending in the next batch with no retry left, finishes B
    [again] = repo.claim_calls(org_id, [f"uuid-again-{secrets.token_hex(4)}"])
    assert again.ticket.call_id == b1
    assert repo.write_progress(
        [("call_ended", (b1, CallStatus.FAILED, "USER_BUSY", time.time(), None))]
    ) == [True]
    assert repo.request_status(org_id, "mixed-b", limit=10).request.status \
        is RequestStatus.COMPLETED


def test_a_failing_write_costs_only_itself(repo: Repo):
    # given a batch where one write cannot be done (no such write)
    org_id, [first, second] = _claimed(repo, "isolated", 2)
    writes = [
        ("call_answered", (first, time.time())),
        ("no_such_write", (first,)),
        ("append_step", (second, PLAYED)),
    ]
    # when the batch is written
    results = repo.write_progress(writes)
    # then that write reports its error and the others are committed all the same
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], AttributeError)
    calls = {call.id: call for call in repo.request_status(org_id, "isolated", limit=10).calls}
    assert calls[first].status is CallStatus.ON_PROGRESS
    assert calls[second].steps == (PLAYED,)


def test_the_writer_keeps_each_calls_order_and_replaces_a_running_transfer(repo: Repo):
    # given calls writing through one group-commit writer from greenlets of their own
    org_id, call_ids = _claimed(repo, "writer", 5)
    writer = ProgressWriter(repo)
    told: list[tuple[int, str]] = []
    ringing = StepResult("2", StepName.TRANSFER, StepStatus.RUNNING, CallState.ONGOING)
    talking = replace(ringing, transfer_status=DialResult.ANSWERED)
    done = replace(talking, status=StepStatus.SUCCESS_OK, call_state=CallState.ENDED)

    def run(call_id: int) -> bool:
        writer.leg(call_id, Leg(f"leg-{call_id}", LegKind.CALL, "+65"))
        writer.answered(call_id, time.time(), lambda: told.append((call_id, "answered")))
        for result in (PLAYED, ringing, talking, done):
            writer.step(call_id, result, told.append, (call_id, result.status.value))
            gevent.sleep(0)
        return writer.call_ended(
            call_id, status=CallStatus.COMPLETED, hangup_cause="NORMAL_CLEARING",
            ended_at=time.time(), duration_seconds=2.0,
        )

    greenlets = [gevent.spawn(run, call_id) for call_id in call_ids]
    gevent.joinall(greenlets, raise_error=True)
    # then every call's report holds its steps in order, the transfer once, at its end
    calls = repo.request_status(org_id, "writer", limit=10).calls
    assert all(call.steps == (PLAYED, done) for call in calls)
    assert all(call.status is CallStatus.COMPLETED for call in calls)
    # each call's observers heard of its moments in order, after they were written
    for call_id in call_ids:
        assert [what for who, what in told if who == call_id] == [
            "answered", "success_ok", "running", "running", "success_ok",
        ]
    # and exactly one call's end completed the request
    assert sorted(greenlet.value for greenlet in greenlets) == [False] * 4 + [True]


def test_a_final_write_that_fails_raises_in_the_caller(repo: Repo):
    # given a writer whose store refuses the end (its connection gone: closed underneath)
    _org_id, [call_id] = _claimed(repo, "refused", 1)
    writer = ProgressWriter(_Refusing(repo))
    # then call_ended raises, as the runner's retry loop expects
    try:
        writer.call_ended(call_id, status=CallStatus.COMPLETED, hangup_cause="NORMAL_CLEARING",
                          ended_at=time.time(), duration_seconds=1.0)
    except LookupError as err:
        assert "refused" in str(err)
    else:
        raise AssertionError("the failed final write was not reported")


class _Refusing:
    """A store whose every write fails (as a database gone away makes them)."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def write_progress(self, writes: list[object]) -> list[object]:
        return [LookupError("refused") for _ in writes]


def test_sqlite_commits_stay_durable_where_they_must(repo: Repo):
    # SQLite's synchronous level is sent only when it changes; it must still change every time
    if repo._postgresql:
        pytest.skip("PostgreSQL commits are durable in every transaction")
    levels = []
    for durable in (True, False, False, True, True, False):
        with repo._writing(durable=durable):
            levels.append(repo.database.execute_sql("PRAGMA synchronous").fetchone()[0])
    assert levels == [2, 1, 1, 2, 2, 1]  # FULL = 2, NORMAL = 1


def test_writes_before_an_end_in_the_same_batch_are_kept_in_order(repo: Repo):
    # given two calls whose last moments and ends share one batch, one failed, one completed
    org_id, [first, second] = _claimed(repo, "mixed", 2)
    now = time.time()
    leg = Leg("leg-2", LegKind.CALL, "+65")
    writes = [
        ("append_step", (first, PLAYED)),
        ("call_ended", (first, CallStatus.FAILED, "USER_BUSY", now, None)),
        ("call_leg", (second, leg)),
        ("call_answered", (second, now)),
        ("call_ended", (second, CallStatus.COMPLETED, "NORMAL_CLEARING", now, 2.0)),
    ]
    # when they are written
    results = repo.write_progress(writes)
    # then each end is final and the second completed the request; nothing before was lost
    assert results == [None, False, None, None, True]
    calls = {call.id: call for call in repo.request_status(org_id, "mixed", limit=10).calls}
    assert calls[first].status is CallStatus.FAILED and calls[first].steps == (PLAYED,)
    assert calls[first].hangup_cause == "USER_BUSY"
    assert calls[second].status is CallStatus.COMPLETED and calls[second].monitor == (leg,)
    assert calls[second].answered_at is not None
    assert repo.find_request(org_id, "mixed").status is RequestStatus.COMPLETED

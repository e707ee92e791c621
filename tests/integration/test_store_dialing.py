"""The dispatcher's queries on SQLite and PostgreSQL: FIFO claims, durable dialing, progress."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

import gevent
import pytest

from robocall import bootstrap
from robocall.flow.actions import StepResult
from robocall.flow.model import CallFlow, CallRequest, Destination, Message, Play
from robocall.flow.status import CallState, DialResult, Leg, LegKind, StepName, StepStatus
from robocall.store.records import CallStatus, RequestStatus
from robocall.store.repo import Repo

FLOW = CallFlow(steps=(Play(message=Message(text="hello {{name}}")),))
FLOW_JSON = '{"steps": [{"name": "play", "message": {"msg": "hello {{name}}"}}]}'


def _org(repo: Repo, lines: int = 6) -> str:
    return bootstrap.create_organization(repo, f"org {secrets.token_hex(3)}", lines=lines).id


def _submit(repo: Repo, org_id: str, request_id: str, count: int) -> int:
    request = CallRequest(
        request_id=request_id,
        destinations=tuple(
            Destination(phone=f"+6580{index:06d}", caller="+6582674904", properties={"name": "A"})
            for index in range(count)
        ),
        call_flow=FLOW,
        enable_call_recording=True,
    )
    record, _ = repo.submit_request(
        org_id, request, call_flow_json=FLOW_JSON, body_hash=secrets.token_hex(8)
    )
    return record.seq


def _uuids(count: int) -> list[str]:
    return [f"uuid-{secrets.token_hex(6)}" for _ in range(count)]


def _statuses(repo: Repo, org_id: str, request_id: str) -> list[str]:
    page = repo.request_status(org_id, request_id, limit=1000)
    return [call.status.value for call in page.calls]


def test_claims_are_first_in_first_out_across_requests(repo: Repo):
    # given two requests of one organization, the first submitted first
    org_id = _org(repo)
    first = _submit(repo, org_id, "fifo-1", 3)
    second = _submit(repo, org_id, "fifo-2", 3)
    # when calls are claimed in two batches
    batch1 = repo.claim_calls(org_id, _uuids(2))
    batch2 = repo.claim_calls(org_id, _uuids(3))
    # then the first request's calls come first, in destination order, then the second's
    order = [(c.request_seq, c.ticket.phone) for c in batch1 + batch2]
    assert order == [
        (first, "+6580000000"),
        (first, "+6580000001"),
        (first, "+6580000002"),
        (second, "+6580000000"),
        (second, "+6580000001"),
    ]
    ticket = batch1[0].ticket
    assert ticket.request_id == "fifo-1" and ticket.organization_id == org_id
    assert ticket.line_variable == ("accountcode", org_id)
    assert ticket.properties == {"name": "A"} and ticket.record is True
    assert batch1[0].call_flow_json == FLOW_JSON


def test_claimed_calls_are_dialing_with_their_channel_uuid_and_the_request_in_progress(repo: Repo):
    org_id = _org(repo)
    _submit(repo, org_id, "claimed", 2)
    uuids = _uuids(1)
    [claimed] = repo.claim_calls(org_id, uuids)
    assert claimed.ticket.channel_uuid == uuids[0]
    assert _statuses(repo, org_id, "claimed") == ["dialing", "queued"]
    page = repo.request_status(org_id, "claimed", limit=10)
    assert page.request.status is RequestStatus.ON_PROGRESS
    assert dict(page.counts) == {"dialing": 1, "queued": 1}


def test_nothing_is_claimed_twice_even_by_concurrent_claimers(repo: Repo):
    # given 30 queued calls and 6 greenlets claiming at once
    org_id = _org(repo)
    _submit(repo, org_id, "race", 30)
    claims = [gevent.spawn(repo.claim_calls, org_id, _uuids(4)) for _ in range(6)]
    gevent.joinall(claims, raise_error=True)
    ids = [c.ticket.call_id for g in claims for c in g.value]
    # then 24 distinct calls were claimed
    assert len(ids) == 24 and len(set(ids)) == 24
    assert _statuses(repo, org_id, "race").count("dialing") == 24


def test_another_organizations_queue_is_untouched(repo: Repo):
    mine, theirs = _org(repo), _org(repo)
    _submit(repo, theirs, "theirs", 2)
    assert repo.claim_calls(mine, _uuids(5)) == []
    assert theirs in repo.organizations_with_queued_calls()
    assert mine not in repo.organizations_with_queued_calls()


def test_a_running_transfer_is_replaced_by_its_final_result(repo: Repo):
    # given a claimed call whose first step played
    org_id = _org(repo)
    _submit(repo, org_id, "transfer-progress", 1)
    [claimed] = repo.claim_calls(org_id, _uuids(1))
    call_id = claimed.ticket.call_id
    played = StepResult("1", StepName.PLAY, StepStatus.SUCCESS_OK, CallState.ONGOING)
    repo.call_step(call_id, played)
    # when a transfer is reported ringing, then answered, then over
    ringing = StepResult("2", StepName.TRANSFER, StepStatus.RUNNING, CallState.ONGOING)
    talking = replace(ringing, transfer_status=DialResult.ANSWERED)
    done = replace(talking, status=StepStatus.SUCCESS_OK, call_state=CallState.ENDED)
    seen = []
    for result in (ringing, talking, done):
        repo.call_step(call_id, result)
        [call] = repo.request_status(org_id, "transfer-progress", limit=1).calls
        seen.append(call.steps)
    # then the status holds one transfer entry at each moment: its latest
    assert seen == [(played, ringing), (played, talking), (played, done)]


def test_a_call_runs_to_completion_and_completes_its_request(repo: Repo):
    # given a request of one call, claimed
    org_id = _org(repo)
    _submit(repo, org_id, "lifecycle", 1)
    [claimed] = repo.claim_calls(org_id, _uuids(1))
    call_id = claimed.ticket.call_id
    now = time.time()
    # when the runner reports its progress
    leg = Leg(claimed.ticket.channel_uuid, LegKind.CALL, "+65")
    repo.call_leg(call_id, leg)
    repo.call_answered(call_id, now)
    played = StepResult("1", StepName.PLAY, StepStatus.SUCCESS_OK, CallState.ENDED)
    repo.call_step(call_id, played)
    repo.call_ended(
        call_id, status=CallStatus.COMPLETED, hangup_cause="NORMAL_CLEARING", ended_at=now + 3,
        duration_seconds=3.0,
    )
    # then the status shows it all, and the request is completed
    page = repo.request_status(org_id, "lifecycle", limit=10)
    [call] = page.calls
    assert call.status is CallStatus.COMPLETED
    assert call.steps == (played,)
    assert call.monitor == (leg,)
    assert call.hangup_cause == "NORMAL_CLEARING" and call.duration_seconds == 3.0
    assert call.answered_at is not None
    assert page.request.status is RequestStatus.COMPLETED
    assert dict(page.counts) == {"completed": 1}


def test_a_request_is_not_completed_while_calls_are_queued(repo: Repo):
    org_id = _org(repo)
    _submit(repo, org_id, "partial", 2)
    [claimed] = repo.claim_calls(org_id, _uuids(1))
    repo.call_ended(
        claimed.ticket.call_id, status="failed", hangup_cause="USER_BUSY", ended_at=time.time(),
        duration_seconds=None,
    )
    page = repo.request_status(org_id, "partial", limit=10)
    assert page.request.status is RequestStatus.ON_PROGRESS
    assert dict(page.counts) == {"failed": 1, "queued": 1}


def test_a_call_never_sent_goes_back_to_the_queue_in_its_place(repo: Repo):
    org_id = _org(repo)
    _submit(repo, org_id, "unsent", 2)
    [first] = repo.claim_calls(org_id, _uuids(1))
    repo.call_not_dialled(first.ticket.call_id)
    assert _statuses(repo, org_id, "unsent") == ["queued", "queued"]
    [again] = repo.claim_calls(org_id, _uuids(1))
    assert again.ticket.call_id == first.ticket.call_id


@pytest.mark.parametrize("lines", [1, 250])
def test_organizations_with_lines_reports_lines_and_rule(repo: Repo, lines: int):
    org_id = _org(repo, lines=lines)
    [organization] = [o for o in repo.organizations_with_lines() if o.id == org_id]
    assert organization.max_concurrent_calls == lines
    assert (organization.line_variable, organization.line_value) == ("accountcode", org_id)

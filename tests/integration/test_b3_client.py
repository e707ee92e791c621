"""A client written for B3, from the contract text alone, over robocall and FakeSwitch on both
databases: the seed's own example and a 5,000-destination request read back whole, every
answer valid against /v1/openapi.json, sucess_ok where the flow succeeded, and why every
unanswered call was not answered (the 5,000-destination request's first hundred calls are
dialled, the rest cancelled: FakeSwitch takes 30 new calls a second)."""

from __future__ import annotations

import time

import gevent
import requests

from robocall.api.auth import API_KEY_HEADER
from robocall.testing import Callee, Press
from tests.support.b3_client import SUCCESS, B3Client
from tests.support.requests_data import seed_example
from tests.support.service import SETTLE_SECONDS

SEED_PRESSES_1, SEED_BUSY = "+84917660247", "+84912860330"


def _until_final(client: B3Client, request_id: str, seconds: float = SETTLE_SECONDS) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        status = client.status(request_id)
        if status["status"] in ("completed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"{request_id} not final"
        gevent.sleep(2.0)  # each poll reads every call: not so often it loads the service


def test_the_seed_example_reads_back_as_the_contract_shows(start_service):
    # given robocall over a switch where the seed's first number presses 1 at each gather and
    # the second is busy
    presses_1 = Callee(presses=(Press(at_ms=500, digits="1", on_prompt=1),
                                Press(at_ms=500, digits="1", on_prompt=2)))
    running = start_service({SEED_PRESSES_1: presses_1, SEED_BUSY: Callee(outcome="busy",
                                                                         ring=False)})
    client = B3Client(running.base_url, running.key)
    body = seed_example()
    running.warm_prompts(body)
    # when a B3 client submits the seed's example unchanged and polls its status
    submitted = client.submit(body)
    final = _until_final(client, body["requestId"])
    # then it was submitted, and every call reads as the contract shows
    assert submitted["status"] == "submitted"
    calls = {detail["destination"]: detail for detail in final["details"]}
    assert set(calls) == {SEED_PRESSES_1, SEED_BUSY}
    answered = calls[SEED_PRESSES_1]
    assert answered["status"] == "completed"
    assert [(s["stepName"], s["info"]["status"]) for s in answered["callFlowSteps"]] == [
        ("play", SUCCESS), ("gather", SUCCESS), ("gather", SUCCESS), ("play", SUCCESS),
    ]
    assert answered["callFlowSteps"][-1]["info"]["call_state"] == "ended"
    [busy] = calls[SEED_BUSY]["callFlowSteps"]
    assert calls[SEED_BUSY]["status"] == "failed"
    assert (busy["info"]["call_status"], busy["info"]["call_state"]) == ("busy", "ended")


def test_a_5000_destination_request_reads_back_whole(start_service):
    # given a switch where most numbers are busy, and early in the list some do not answer and
    # some answer; dialled at the pace the switch takes (FakeSwitch's 30 sessions a second)
    busy = Callee(outcome="busy", ring=False)
    phones = [f"+6590{index:06d}" for index in range(5000)]
    no_answer, answers = phones[1:40:4], phones[2:40:4]
    scripted = {phone: Callee(outcome="no_answer") for phone in no_answer}
    scripted |= {phone: Callee(answer_after_ms=20) for phone in answers}
    running = start_service(scripted, default=busy, lines=25, cps=25.0, switch_cps=25.0)
    client = B3Client(running.base_url, running.key)
    body = {
        "requestId": "bulk_5000",
        "destinations": [{"phone": phone, "caller": "+6582674904",
                          "properties": {"name": f"n{index}"}}
                         for index, phone in enumerate(phones)],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello", "language": "en"}}]},
    }
    running.warm_prompts({**body, "destinations": body["destinations"][:1]})
    # when a B3 client submits it, and reads its status as the contract has it (no paging)
    # while the first hundred calls run; then the rest is cancelled (so the test stays short)
    client.submit(body)
    deadline = time.monotonic() + SETTLE_SECONDS
    while not all(d["status"] in ("completed", "failed")
                  for d in client.status("bulk_5000")["details"][:100]):
        assert time.monotonic() < deadline, "the first hundred calls did not end"
        gevent.sleep(2.0)
    assert requests.delete(f"{running.base_url}/v1/call/bulk_5000",
                           headers={API_KEY_HEADER: running.key}, timeout=60).ok
    final = _until_final(client, "bulk_5000")
    # then every call is in the one answer, in order, and every call dialled says how it went
    assert [detail["destination"] for detail in final["details"]] == phones
    outcomes = {}
    for detail in final["details"]:
        steps = detail["callFlowSteps"]
        if detail["status"] == "cancelled":
            assert steps == []
            continue
        [step] = steps
        outcomes[detail["destination"]] = (detail["status"], step["info"]["call_status"],
                                           step["info"]["status"])
    assert {outcomes[phone] for phone in answers} == {("completed", "answered", SUCCESS)}
    assert {outcomes[phone] for phone in no_answer} == {
        ("failed", "no_answer", "error_not_answered")}
    assert {outcomes[phone] for phone in phones[:100:4]} == {
        ("failed", "busy", "error_not_answered")}

"""Webhooks over the whole service: calls on FakeSwitch, events POSTed to a real local receiver,
signed, in order per call, retried with backoff, kept across a restart, and logged for the API
(on SQLite and on PostgreSQL)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import gevent.event
import pytest

from robocall import bootstrap
from robocall.testing import Callee
from tests.support.receiver import Received, Receiver, verify_signature
from tests.support.resolver import LocalResolver
from tests.support.service import RunningService, ServiceStarter

pytestmark = pytest.mark.usefixtures("repo")

ANSWERS = "+6580000001"
BUSY = "+6580000002"
CALLEES = {BUSY: Callee(outcome="busy", ring=False)}
# Retries in tests wait 50 ms, 100 ms, 200 ms...: the same backoff, shrunk.
# Fast retries; and a rate limit the tests' polling of the delivery log never reaches.
# The receiver is on loopback: allowed as an on-prem operator allows its own network.
FAST = {
    "webhook_allow_networks": "127.0.0.0/8",
    "webhook_backoff_seconds": 0.05,
    "webhook_timeout_seconds": 5.0,
    "rate_limit_per_minute": 1_000_000,
}


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def _request(callback_url: str, *phones: str) -> dict[str, Any]:
    return {
        "requestId": f"hook-{secrets.token_hex(4)}",
        "callbackUrl": callback_url,
        "destinations": [{"phone": phone, "caller": "+6582674904"} for phone in phones],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello there."}}]},
    }


def _submit(running: RunningService, body: dict[str, Any]) -> dict[str, Any]:
    running.warm_prompts(body)
    answer = running.post_call(body)
    assert answer.status_code == 200, answer.text
    return running.wait_until_final(body["requestId"])


def _deliveries(running: RunningService, request_id: str) -> list[dict[str, Any]]:
    answer = running.get(f"/v1/webhooks/deliveries?requestId={request_id}&limit=1000")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["deliveries"])


def _wait_all_delivered(
    receiver: Receiver, running: RunningService, request_id: str, count: int
) -> None:
    """Wait until the request's ``count`` events are in the log, all delivered (robocall
    records a delivery just after the receiver answered)."""

    def done() -> bool:
        log = _deliveries(running, request_id)
        return len(log) == count and all(d["status"] == "delivered" for d in log)

    receiver.wait_for(done)


def test_signed_events_arrive_in_order_per_call(start_service: ServiceStarter, receiver):
    # given robocall and a receiver, and a request for one answered and one busy call
    running = start_service(CALLEES, **FAST)
    body = _request(receiver.url, ANSWERS, BUSY)
    # when the calls run to their end
    final = _submit(running, body)
    request_id = body["requestId"]
    _wait_all_delivered(receiver, running, request_id, 7)
    # then every POST carries a signature that verifies with the organization's secret
    secret = bootstrap.webhook_secret(running.repo, running.org_id)
    posts = [r for r in receiver.received if r.event["requestId"] == request_id]
    assert posts and all(verify_signature(secret, r.headers, r.body) for r in posts)
    assert all(r.headers["x-robocall-event"] == r.event["event"] for r in posts)
    assert {r.path for r in posts} == {"/hooks/robocall"}
    # and a tampered body would not verify
    assert not verify_signature(secret, posts[0].headers, posts[0].body.replace(b"+65", b"+66"))
    # and each call's events came in the order they happened, with the call's detail
    ids = {d["destination"]: d["callId"] for d in final["details"]}
    events = receiver.events(request_id)
    answered = [e for e in events if e["callId"] == ids[ANSWERS]]
    busy = [e for e in events if e["callId"] == ids[BUSY]]
    assert [e["event"] for e in answered if e["event"] != "request.completed"] == [
        "call.dialing", "call.answered", "call.step", "call.completed"
    ]
    assert answered[2]["step"]["info"]["status"] == "success_ok"
    assert answered[3]["hangupCause"] == "NORMAL_CLEARING"
    assert [e["event"] for e in busy if e["event"] != "request.completed"] == [
        "call.dialing", "call.failed"
    ]
    assert busy[1]["status"] == "failed" and busy[1]["hangupCause"] == "USER_BUSY"
    # and the request's completion came once, after its last call's end, with the counts
    completions = [e for e in events if e["event"] == "request.completed"]
    assert len(completions) == 1
    assert completions[0]["counts"] == {"completed": 1, "failed": 1}
    assert events.index(completions[0]) > max(
        events.index(answered[3]), events.index(busy[1])
    )
    # and every event is in the delivery log, delivered at the first attempt
    log = _deliveries(running, request_id)
    assert len(log) == len(events) == 7
    assert {(d["status"], d["attempts"], d["httpStatus"]) for d in log} == {
        ("delivered", 1, 204)
    }
    assert {d["eventId"] for d in log} == {e["eventId"] for e in events}


def test_a_failing_receiver_gets_the_event_after_retries(start_service, receiver):
    # given a receiver that answers 500 to its first three POSTs
    failures_left = [3]

    def answer(received: Received) -> tuple[int, dict[str, str]]:
        if failures_left[0] > 0:
            failures_left[0] -= 1
            return 500, {}
        return 200, {}

    receiver.answer = answer
    running = start_service(**FAST)
    body = _request(receiver.url, ANSWERS)
    request_id = body["requestId"]
    # when one call runs
    _submit(running, body)
    _wait_all_delivered(receiver, running, request_id, 5)
    # then the first event was tried four times, the same event each time, and got through
    events = receiver.events(request_id)
    assert [e["event"] for e in events[:4]] == ["call.dialing"] * 4
    assert len({e["eventId"] for e in events[:4]}) == 1
    # and the events still arrived in order once it did
    assert [e["event"] for e in events[3:]] == [
        "call.dialing", "call.answered", "call.step", "call.completed", "request.completed"
    ]
    # and the delivery log shows each attempt
    first = _deliveries(running, request_id)[0]
    assert first["event"] == "call.dialing" and first["attempts"] == 4
    assert [a["httpStatus"] for a in first["attemptLog"]] == [500, 500, 500, 200]
    assert first["attemptLog"][0]["error"] == "HTTP 500"
    assert all(isinstance(attempt["durationMs"], int) for attempt in first["attemptLog"])
    # and nothing the receiver answered is handed back
    log_text = running.get(f"/v1/webhooks/deliveries?requestId={request_id}").text
    assert "receiver says no" not in log_text
    assert first["error"] is None and first["deliveredAt"] is not None


def test_an_event_that_keeps_failing_is_given_up_and_the_next_ones_go_on(
    start_service, receiver
):
    # given a receiver that refuses every call.dialing event, and two attempts per event
    receiver.answer = lambda r: (503, {}) if r.event["event"] == "call.dialing" else (200, {})
    running = start_service(webhook_max_attempts=2, **FAST)
    body = _request(receiver.url, ANSWERS)
    request_id = body["requestId"]
    # when the call runs
    _submit(running, body)
    receiver.wait_for(lambda: len(_deliveries(running, request_id)) == 5 and all(
        d["status"] != "pending" for d in _deliveries(running, request_id)
    ))
    # then call.dialing was tried twice and marked failed; the later events were delivered
    log = _deliveries(running, request_id)
    assert [(d["event"], d["status"], d["attempts"]) for d in log] == [
        ("call.dialing", "failed", 2),
        ("call.answered", "delivered", 1),
        ("call.step", "delivered", 1),
        ("call.completed", "delivered", 1),
        ("request.completed", "delivered", 1),
    ]
    assert log[0]["httpStatus"] == 503 and log[0]["nextAttemptAt"] is None


def test_a_restart_delivers_what_was_pending(start_service, receiver):
    # given a receiver that is down (503) while the first robocall runs the request
    down = [True]
    receiver.answer = lambda r: (503, {}) if down[0] else (200, {})
    first = start_service(**FAST)
    body = _request(receiver.url, ANSWERS)
    request_id = body["requestId"]
    _submit(first, body)
    # (the last events are written just after the status turns final)
    receiver.wait_for(lambda: len(receiver.events(request_id)) >= 2 and len(
        _deliveries(first, request_id)) == 5)
    # when that robocall's webhook worker stops with its events undelivered (its calls are
    # over, so the rest of it is idle)
    assert first.service.webhooks is not None
    first.service.webhooks.stop()
    pending = _deliveries(first, request_id)
    assert len(pending) == 5 and {d["status"] for d in pending} == {"pending"}
    # and the receiver comes back and a new robocall starts on the same database
    down[0] = False
    start_service(**FAST, database_url=first.service.settings.database_url)
    # then every event is delivered, in order
    receiver.wait_for(lambda: all(
        d["status"] == "delivered" for d in _deliveries(first, request_id)
    ))
    accepted = [
        e["event"] for e in receiver.events(request_id)
    ][-5:]
    assert accepted == [
        "call.dialing", "call.answered", "call.step", "call.completed", "request.completed"
    ]


def test_a_request_without_a_callback_url_sends_nothing(start_service, receiver):
    # given a request with no callbackUrl
    running = start_service(**FAST)
    body = _request(receiver.url, ANSWERS)
    del body["callbackUrl"]
    # when it runs to its end
    _submit(running, body)
    # then its delivery log is empty and the receiver heard nothing of it
    assert _deliveries(running, body["requestId"]) == []
    assert receiver.events(body["requestId"]) == []


def test_the_delivery_log_is_the_organizations_own(start_service, receiver):
    # given one organization's delivered request
    running = start_service(**FAST)
    body = _request(receiver.url, ANSWERS)
    _submit(running, body)
    _wait_all_delivered(receiver, running, body["requestId"], 5)
    # when another organization reads the log for that requestId
    other = bootstrap.create_organization(running.repo, "other", lines=1)
    other_key = bootstrap.create_api_key(running.repo, other.id)
    answer = running.get(f"/v1/webhooks/deliveries?requestId={body['requestId']}", other_key)
    # then it sees nothing of it
    assert answer.status_code == 200 and answer.json()["deliveries"] == []
    # and the owner pages through it two at a time
    page = running.get(f"/v1/webhooks/deliveries?requestId={body['requestId']}&limit=2").json()
    seen = [d["event"] for d in page["deliveries"]]
    while page["nextCursor"]:
        page = running.get(
            f"/v1/webhooks/deliveries?requestId={body['requestId']}&limit=2"
            f"&cursor={page['nextCursor']}"
        ).json()
        seen += [d["event"] for d in page["deliveries"]]
    assert seen == [
        "call.dialing", "call.answered", "call.step", "call.completed", "request.completed"
    ]


def test_a_send_cut_off_by_a_stop_is_sent_again_by_the_next_start(start_service, receiver):
    # given a receiver that holds its first POST without answering, and a long timeout
    gate = gevent.event.Event()

    def answer(received: Received) -> tuple[int, dict[str, str]]:
        if len(receiver.received) == 1:
            gate.wait()
        return 200, {}

    receiver.answer = answer
    first = start_service(**{**FAST, "webhook_timeout_seconds": 30.0})
    body = _request(receiver.url, ANSWERS)
    request_id = body["requestId"]
    _submit(first, body)
    receiver.wait_for(lambda: len(receiver.received) == 1 and len(
        _deliveries(first, request_id)) == 5)
    # when robocall's worker stops while that POST is in flight
    assert first.service.webhooks is not None
    first.service.webhooks.stop(grace_seconds=0.2)
    gate.set()
    # then the next start sends it again (no waiting out its 60 s lease), and the rest after it
    start_service(**FAST, database_url=first.service.settings.database_url)
    receiver.wait_for(lambda: all(
        d["status"] == "delivered" for d in _deliveries(first, request_id)
    ))
    events = receiver.events(request_id)
    assert [e["event"] for e in events] == [
        "call.dialing", "call.dialing", "call.answered", "call.step", "call.completed",
        "request.completed",
    ]
    # and the receiver can tell the repeat by its eventId
    assert events[0]["eventId"] == events[1]["eventId"]


def test_loopback_receivers_are_refused_without_the_operators_allow(start_service, receiver):
    # given robocall with no network allowed (the default), and the receiver on 127.0.0.1
    running = start_service(**{k: v for k, v in FAST.items() if k != "webhook_allow_networks"})
    body = _request(receiver.url, ANSWERS)
    # when a request names the loopback receiver, then it is refused naming callbackUrl
    answer = running.post_call(body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("callbackUrl: host 127.0.0.1 is 127.0.0.1, a "
                                               "loopback address")
    assert receiver.received == []


def test_a_host_that_turns_private_after_submission_is_refused_at_delivery(
    start_service, receiver
):
    # given a name that resolves to a public address when the request is submitted, and to
    # a private one afterwards (DNS rebinding), two attempts per event
    answers = iter([["93.184.216.34"]])

    class Rebinding(LocalResolver):
        def __call__(self, host: str, port: int) -> list[str]:
            self.asked.append(host)
            return next(answers, ["10.9.8.7"])

    resolver = Rebinding()
    running = start_service(resolver=resolver, webhook_max_attempts=2, **FAST)
    body = _request("http://hooks.example.test/robocall", ANSWERS)
    request_id = body["requestId"]
    # when it is accepted and its call runs
    assert running.post_call(body).status_code == 200
    running.wait_until_final(request_id)
    # then every attempt looked the name up again, found it private, and sent nothing
    receiver.wait_for(lambda: all(
        d["status"] == "failed" for d in _deliveries(running, request_id)
    ) and len(_deliveries(running, request_id)) == 5)
    first = _deliveries(running, request_id)[0]
    assert first["attempts"] == 2 and first["httpStatus"] is None
    assert first["error"].startswith(
        "refused: host hooks.example.test resolves to 10.9.8.7, a private address"
    )
    assert resolver.asked.count("hooks.example.test") >= 1 + 5 * 2
    assert receiver.received == []


def test_the_delivery_log_is_pruned_after_the_retention(start_service, receiver):
    # given robocall keeping the delivery log one day, and a request whose events arrived
    offset = [0.0]
    running = start_service(
        clock=lambda: time.time() + offset[0], webhook_retention_days=1, **FAST
    )
    body = _request(receiver.url, ANSWERS)
    request_id = body["requestId"]
    _submit(running, body)
    _wait_all_delivered(receiver, running, request_id, 5)
    worker = running.service.webhooks
    assert worker is not None
    # when less than the retention has passed, then pruning keeps every row
    offset[0] = 23 * 3600.0
    assert worker.prune() == 0 and len(_deliveries(running, request_id)) == 5
    # when two days have passed, then the worker prunes them on its own
    offset[0] = 2 * 86400.0
    receiver.wait_for(lambda: _deliveries(running, request_id) == [])


def test_a_pending_event_is_kept_past_the_retention(start_service, receiver):
    # given a receiver that is down, and robocall keeping the log one day
    receiver.answer = lambda r: (503, {})
    offset = [0.0]
    running = start_service(clock=lambda: time.time() + offset[0], webhook_retention_days=1,
                            **{**FAST, "webhook_backoff_seconds": 3600.0})
    body = _request(receiver.url, ANSWERS)
    request_id = body["requestId"]
    _submit(running, body)
    receiver.wait_for(lambda: len(receiver.received) >= 1)
    # when two days pass with its events still pending, then none is pruned
    offset[0] = 2 * 86400.0
    assert running.service.webhooks is not None
    assert running.service.webhooks.prune() == 0
    assert {d["status"] for d in _deliveries(running, request_id)} == {"pending"}

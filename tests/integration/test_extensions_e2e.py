"""The extensions end to end: robocall over HTTP, dialling FakeSwitch, on SQLite and on
PostgreSQL, with the store's clock held by the test (no test depends on the wall clock).

Retry policy, calling window, cancel (DELETE /v1/call/{requestId}) and the lines endpoint.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

from robocall.api.auth import API_KEY_HEADER
from robocall.testing import Callee
from tests.support.clock import START, iso
from tests.support.service import RunningService, wait_for

pytestmark = pytest.mark.usefixtures("repo")

CALLER = "+6582674904"
SINGAPORE = "+6591234567"  # 16:30 at START
LONDON = "+442071234567"  # 08:30 at START
HELLO = {"steps": [{"name": "play", "message": {"msg": "Hello."}}]}
TALKS_LONG = Callee(answer_after_ms=100, hangup_after_ms=600_000)


def _body(prefix: str, phones: list[str], **extensions: Any) -> dict[str, Any]:
    return {
        "requestId": f"{prefix}-{secrets.token_hex(3)}",
        "destinations": [{"phone": phone, "caller": CALLER} for phone in phones],
        "callFlow": HELLO,
        **extensions,
    }


def _details(running: RunningService, request_id: str) -> dict[str, dict[str, Any]]:
    return running.calls_by_destination(running.status(request_id))


def _dialled(running: RunningService, body: dict[str, Any]) -> list[str]:
    """The numbers of ``body`` robocall originated, in order, as the switch received them.

    (The service dials every organization's queued calls in the shared test database; other
    tests' leftovers are not this test's business.)
    """
    ours = {destination["phone"] for destination in body["destinations"]}
    dialled = [
        command.split("sofia/gateway/robocall/")[1].split(" ")[0]
        for command in running.fake.received
        if command.startswith("bgapi originate")
    ]
    return [number for number in dialled if number in ours]


def _dispatch_now(running: RunningService) -> None:
    running.service.dispatcher.wake(running.org_id)


# --- retry policy -------------------------------------------------------------------------------


def test_a_busy_call_is_retried_after_its_backoff_in_its_place(start_clocked_service, clock):
    # given a number that is busy, one line, and a retry policy on busy with a 10-minute backoff
    busy_first = "+6580000101"
    running = start_clocked_service({busy_first: Callee(outcome="busy", ring=False)}, lines=1)
    answers = "+6580000102"
    body = _body("retry", [busy_first, answers],
                 retry={"maxAttempts": 3, "on": ["busy"], "backoffSeconds": 600})
    # when the request is posted
    assert running.post_call(body).status_code == 200
    # then the busy call goes back to the queue, due in 10 minutes, and the next call runs
    details = wait_for(
        lambda: (d := _details(running, body["requestId"]))[answers]["status"] == "completed"
        and d[busy_first]["status"] == "queued" and d,
        "the second call to complete while the busy one waits",
    )
    waiting = details[busy_first]
    assert (waiting["attempt"], waiting["hangupCause"]) == (1, "USER_BUSY")
    assert waiting["nextAttemptAt"] == iso(START.replace(minute=40))
    assert running.status(body["requestId"])["status"] == "onProgress"
    # when the callee is free again and the backoff has passed
    running.fake.callees.set(busy_first, Callee())
    clock.advance(600)
    _dispatch_now(running)
    final = running.wait_until_final(body["requestId"])
    # then the second attempt is answered: every call completed, the busy one on attempt 2
    assert final["status"] == "completed"
    assert final["counts"] == {"completed": 2}
    retried = running.calls_by_destination(final)[busy_first]
    assert retried["attempt"] == 2
    assert retried["callFlowSteps"][0]["info"]["status"] == "success_ok"
    # and the answered attempt's leg is the last of the legs shown
    assert retried["monitorData"][-1]["type"] == "call"
    assert _dialled(running, body) == [busy_first, answers, busy_first]


def test_retries_stop_at_max_attempts_and_only_follow_listed_outcomes(start_clocked_service):
    # given a number always busy and one that rejects calls, retried on busy only, no backoff
    always_busy, rejects = "+6580000111", "+6580000112"
    running = start_clocked_service({always_busy: Callee(outcome="busy", ring=False),
                                     rejects: Callee(outcome="reject", ring=False)}, lines=2)
    body = _body("retry-max", [always_busy, rejects],
                 retry={"maxAttempts": 3, "on": ["busy"], "backoffSeconds": 0})
    # when the request runs to its end
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    # then the busy number was dialled three times and the rejecting one once, both failed
    assert final["counts"] == {"failed": 2}
    calls = running.calls_by_destination(final)
    assert (calls[always_busy]["attempt"], calls[always_busy]["hangupCause"]) == (3, "USER_BUSY")
    assert (calls[rejects]["attempt"], calls[rejects]["hangupCause"]) == (1, "CALL_REJECTED")
    assert sorted(_dialled(running, body)) == sorted([always_busy] * 3 + [rejects])


def test_without_a_retry_policy_a_busy_call_is_dialled_once(start_clocked_service):
    always_busy = "+6580000121"
    running = start_clocked_service({always_busy: Callee(outcome="busy", ring=False)})
    body = _body("no-retry", [always_busy])
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    assert final["counts"] == {"failed": 1}
    assert final["details"][0]["attempt"] == 1
    assert _dialled(running, body) == [always_busy]


# --- calling window -----------------------------------------------------------------------------


def test_a_daily_window_in_the_destinations_zone(start_clocked_service, clock):
    # given one line, and office hours read in each destination's zone: at START it is
    # 08:30 in London (closed) and 16:30 in Singapore (open)
    running = start_clocked_service(lines=1)
    body = _body("daily", [LONDON, SINGAPORE],
                 window={"daily": {"from": "09:00", "to": "18:00", "timeZone": "destination"}})
    # when the request is posted
    assert running.post_call(body).status_code == 200
    # then Singapore is called though London comes first; London waits for 09:00 London time
    details = wait_for(
        lambda: (d := _details(running, body["requestId"]))[SINGAPORE]["status"] == "completed"
        and d[LONDON]["nextAttemptAt"] is not None and d,
        "Singapore to be called while London waits",
    )
    assert details[LONDON]["status"] == "queued"
    assert details[LONDON]["attempt"] == 0
    assert details[LONDON]["nextAttemptAt"] == "2026-03-02T09:00:00Z"
    assert _dialled(running, body) == [SINGAPORE]
    # when London's office hours begin
    clock.advance(30 * 60)
    _dispatch_now(running)
    # then London is called too
    final = running.wait_until_final(body["requestId"])
    assert final["counts"] == {"completed": 2}
    assert _dialled(running, body) == [SINGAPORE, LONDON]


def test_not_before_holds_calls_back_and_not_after_cancels_them(start_clocked_service, clock):
    # given one line and three requests: one that may start in an hour (for an hour), one with
    # no window, and one whose window is 2 to 3 hours away
    running = start_clocked_service(lines=1)
    hour = 3600
    later = _body("later", ["+6580000301"], window={
        "notBefore": iso(START.replace(hour=9, minute=30)),
        "notAfter": iso(START.replace(hour=10, minute=30)),
    })
    now = _body("now", ["+6580000302"])
    missed = _body("missed", ["+6580000303", "+6580000304"], window={
        "notBefore": "2026-03-02T18:30:00+08:00", "notAfter": "2026-03-02T19:30:00+08:00",
    })
    for body in (later, now, missed):
        assert running.post_call(body).status_code == 200
    # then only the request without a window is called (though it was posted second)
    assert running.wait_until_final(now["requestId"])["counts"] == {"completed": 1}
    assert running.status(later["requestId"])["counts"] == {"queued": 1}
    # when the first window opens
    clock.advance(hour)
    _dispatch_now(running)
    # then its call is made
    assert running.wait_until_final(later["requestId"])["counts"] == {"completed": 1}
    # when the clock passes the last window's end without its calls having been dialled
    clock.advance(4 * hour)
    _dispatch_now(running)
    # then they are cancelled with a cause that says why, never dialled
    final = running.wait_until_final(missed["requestId"])
    assert final["counts"] == {"cancelled": 2}
    assert {d["hangupCause"] for d in final["details"]} == {"CALLING_WINDOW_CLOSED"}
    both = {"destinations": later["destinations"] + now["destinations"] + missed["destinations"]}
    assert _dialled(running, both) == ["+6580000302", "+6580000301"]


# --- cancel ------------------------------------------------------------------------------------


def test_delete_cancels_queued_calls_and_lets_the_live_one_finish(start_clocked_service):
    # given one line and three calls, each transferred to a person who talks for long
    running = start_clocked_service({"1000": TALKS_LONG}, lines=1)
    body = {**_body("cancel", ["+6580000401", "+6580000402", "+6580000403"]),
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]}}
    assert running.post_call(body).status_code == 200
    wait_for(lambda: _details(running, body["requestId"])["+6580000401"]["status"]
              == "onProgress", "the first call to be answered")
    # when another organization tries to cancel it
    stranger = requests.delete(f"{running.base_url}/v1/call/{body['requestId']}",
                               headers={API_KEY_HEADER: _other_key(running)}, timeout=30)
    # then it is not found for them
    assert stranger.status_code == 404
    # when its owner cancels it
    answer = _delete(running, body["requestId"])
    # then the queued calls are cancelled at once, the live one goes on
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "onProgress"
    assert answer.json()["counts"] == {"onProgress": 1, "cancelled": 2}
    # when the live call ends
    _end_transfers(running, body["requestId"], ["+6580000401"])
    final = running.wait_until_final(body["requestId"])
    # then the request is cancelled: one call completed, the others never dialled
    assert final["status"] == "cancelled"
    assert final["counts"] == {"completed": 1, "cancelled": 2}
    assert _dialled(running, body) == ["+6580000401"]
    # and cancelling again answers the same
    again = _delete(running, body["requestId"])
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")


def _delete(running: RunningService, request_id: str) -> requests.Response:
    return requests.delete(f"{running.base_url}/v1/call/{request_id}",
                           headers={API_KEY_HEADER: running.key}, timeout=30)


def _other_key(running: RunningService) -> str:
    from robocall import bootstrap

    other = bootstrap.create_organization(running.repo, "other", lines=1)
    return bootstrap.create_api_key(running.repo, other.id)


def _end_transfers(running: RunningService, request_id: str, phones: list[str]) -> None:
    """The people the calls to ``phones`` were transferred to hang up, once each is bridged."""
    def transfer_legs() -> list[str]:
        details = _details(running, request_id)
        return [
            leg["uuid"]
            for phone in phones
            if details[phone]["status"] == "onProgress"
            for leg in details[phone]["monitorData"]
            if leg["type"] == "transfer"
        ]

    legs = wait_for(lambda: len(found := transfer_legs()) == len(phones) and found,
                     f"the calls to {phones} to be bridged")
    for channel in running.fake.channels():
        if channel.uuid in legs:
            running.fake.switch.kill(channel, "NORMAL_CLEARING")


# --- lines -------------------------------------------------------------------------------------


def _lines(running: RunningService, change: dict[str, Any] | None = None) -> dict[str, Any]:
    """The organization's lines as its key reads them; or, given a ``change``, as the operator
    changes them."""
    answer = (running.get("/v1/lines") if change is None else running.set_lines(change))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_lines_show_the_switch_and_a_change_takes_effect_at_once(start_clocked_service):
    # given 6 lines, 2 of them busy with calls from another app
    running = start_clocked_service({"1000": TALKS_LONG}, lines=6, cps=50.0)
    for _ in range(2):
        running.fake.start_external_call({"accountcode": running.org_id})
    # then the lines report shows them, as the switch's events counted them
    report = wait_for(lambda: (r := _lines(running))["busyFromOtherApps"] == 2 and r,
                       "the external calls to be counted")
    assert report == {"maxConcurrentCalls": 6, "cps": 50.0, "busyFromOtherApps": 2,
                      "roboCallsLive": 0, "dialsInFlight": 0, "free": 4, "queued": 0}
    # when the organization cuts its lines to the 2 in use, and queues 3 calls
    assert _lines(running, {"maxConcurrentCalls": 2})["free"] == 0
    body = {**_body("lines", ["+6580000501", "+6580000502", "+6580000503"]),
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]}}
    assert running.post_call(body).status_code == 200
    # then nothing is dialled: every call waits
    report = _lines(running)
    assert (report["queued"], report["roboCallsLive"], report["free"]) == (3, 0, 0)
    # when it raises its lines to 4
    _lines(running, {"maxConcurrentCalls": 4})
    # then two calls are dialled on the two lines that are free now, and no more
    report = wait_for(lambda: (r := _lines(running))["roboCallsLive"] == 2 and r,
                       "two robo calls on the freed lines")
    assert report == {"maxConcurrentCalls": 4, "cps": 50.0, "busyFromOtherApps": 2,
                      "roboCallsLive": 2, "dialsInFlight": 0, "free": 0, "queued": 1}
    # and when those calls end, the last one is made
    first_two = [d["phone"] for d in body["destinations"][:2]]
    assert _dialled(running, body) == first_two
    _end_transfers(running, body["requestId"], first_two)
    _end_transfers(running, body["requestId"], ["+6580000503"])
    assert running.wait_until_final(body["requestId"])["counts"] == {"completed": 3}

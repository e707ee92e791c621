"""The extensions' contract over real HTTP, without a dialer (both databases): retry and window
fields checked with the JSON path of each fault, DELETE /v1/call/{requestId} on queued calls,
and lines answered from the store (GET /v1/lines for the tenant, the operator's change)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

from robocall.api.auth import API_KEY_HEADER
from tests.support.api_server import RunningApi
from tests.support.requests_data import seed_with

WINDOW = {
    "notBefore": "2026-03-02T09:00:00+08:00",
    "notAfter": "2026-03-06T18:00:00+08:00",
    "daily": {"from": "09:00", "to": "18:00", "timeZone": "Asia/Singapore"},
}


def _post(api: RunningApi, body: Any) -> tuple[str, requests.Response]:
    _, key = api.new_key()
    return key, api.post_call(key, body)


def _refusal(api: RunningApi, body: Any) -> str:
    key, answer = _post(api, body)
    assert answer.status_code == 400, answer.text
    assert api.status(key, body["requestId"]).status_code == 404  # nothing stored
    return str(answer.json()["message"])


def _delete(api: RunningApi, key: str, request_id: str) -> requests.Response:
    return requests.delete(api.url(f"/v1/call/{request_id}"), headers={API_KEY_HEADER: key},
                           timeout=30)


def _lines(api: RunningApi, key: str) -> requests.Response:
    return requests.get(api.url("/v1/lines"), headers={API_KEY_HEADER: key}, timeout=30)


def test_a_request_with_retry_and_window_is_accepted_and_its_calls_wait_queued(api: RunningApi):
    # given the seed request with a retry policy and a calling window
    body = seed_with(f"with-extensions-{secrets.token_hex(3)}", destinations=3)
    body["retry"] = {"maxAttempts": 3, "on": ["busy", "no_answer"], "backoffSeconds": 120}
    body["window"] = WINDOW
    # when it is posted
    key, answer = _post(api, body)
    # then it is stored, every call queued at attempt 0
    assert answer.status_code == 200, answer.text
    details = answer.json()["details"]
    assert [(d["status"], d["attempt"], d["nextAttemptAt"]) for d in details] == [
        ("queued", 0, None)] * 3
    # and the identical body again is the same request (the extensions are part of the body)
    assert api.post_call(key, body).status_code == 200
    body["retry"]["maxAttempts"] = 4
    assert api.post_call(key, body).status_code == 409
    _leave_nothing_queued(api, key, body["requestId"])


def _leave_nothing_queued(api: RunningApi, key: str, request_id: str) -> None:
    # Services of later tests share this database, and dial every organization's queued calls.
    assert _delete(api, key, request_id).json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b.update(retry={"maxAttempts": 0}), "retry.maxAttempts"),
        (lambda b: b.update(retry={"maxAttempts": 11}), "retry.maxAttempts"),
        (lambda b: b.update(retry={"maxAttempts": 2, "on": ["engaged"]}), "retry.on[0]"),
        (lambda b: b.update(retry={"maxAttempts": 2, "on": []}), "retry.on"),
        (lambda b: b.update(retry={"maxAttempts": 2, "backoffSeconds": -1}),
         "retry.backoffSeconds"),
        (lambda b: b.update(retry={"maxAttempts": 2, "backoff": 5}),
         "retry.backoff: unknown field"),
        (lambda b: b.update(window={"notBefore": "tomorrow"}),
         "window.notBefore: 'tomorrow' is not an ISO-8601 date and time"),
        (lambda b: b.update(window={"notAfter": "2026-03-02T09:00:00"}),
         "window.notAfter: '2026-03-02T09:00:00' needs a UTC offset (Z or +08:00)"),
        (lambda b: b.update(window={"notBefore": "2026-03-02T10:00:00Z",
                                    "notAfter": "2026-03-02T09:00:00Z"}),
         "window.notAfter: must be later than notBefore"),
        (lambda b: b.update(window={"daily": {"from": "9am", "to": "18:00"}}),
         "window.daily.from"),
        (lambda b: b.update(window={"daily": {"from": "09:00", "to": "09:00"}}),
         "window.daily.to: must differ from from (the window would be empty)"),
        (lambda b: b.update(window={"daily": {"from": "09:00", "to": "18:00",
                                              "timeZone": "Mars/Olympus"}}),
         'window.daily.timeZone: "Mars/Olympus" is neither an IANA time zone nor "destination"'),
        (lambda b: b.update(window={"daily": {"from": "09:00", "to": "18:00", "tz": "UTC"}}),
         "window.daily.tz: unknown field"),
        (lambda b: b.update(window={}), "window"),
    ],
)
def test_a_bad_retry_or_window_is_a_400_naming_its_path(api: RunningApi, change: Any,
                                                        expected: str):
    body = seed_with("bad-extension")
    change(body)
    assert _refusal(api, body).startswith(expected)


def test_a_destination_window_needs_a_zone_for_every_number(api: RunningApi):
    # given a daily window read in each destination's zone, and a number with no known zone
    body = seed_with("no-zone", destinations=3)
    body["destinations"][2]["phone"] = "+19999999999"
    body["window"] = {"daily": {"from": "09:00", "to": "18:00", "timeZone": "destination"}}
    # then the 400 names that destination
    assert _refusal(api, body) == (
        "destinations[2].phone: no time zone is known for +19999999999; "
        "give window.daily.timeZone"
    )


def test_delete_cancels_queued_calls_and_is_idempotent_and_private(api: RunningApi):
    # given a stored request (no dialer runs here: every call stays queued)
    body = seed_with("to-cancel", destinations=4)
    key, answer = _post(api, body)
    assert answer.status_code == 200
    # when another organization tries to cancel it
    _, other_key = api.new_key()
    refused = _delete(api, other_key, "to-cancel")
    # then it is not found for them, and nothing changed
    assert refused.status_code == 404
    assert refused.json() == {"status": "error", "message": "no request to-cancel"}
    assert api.status(key, "to-cancel").json()["counts"] == {"queued": 4}
    # when its owner cancels it
    cancelled = _delete(api, key, "to-cancel")
    # then every queued call is cancelled with a cause, and so is the request
    assert cancelled.status_code == 200, cancelled.text
    status = cancelled.json()
    assert status["status"] == "cancelled"
    assert status["counts"] == {"cancelled": 4}
    assert {d["hangupCause"] for d in status["details"]} == {"CANCELLED_BY_CLIENT"}
    # and cancelling again answers the same
    again = _delete(api, key, "to-cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    assert _delete(api, key, "never-posted").status_code == 404


def test_lines_without_a_dialer_come_from_the_store(api: RunningApi):
    # given an organization of 4 lines with 3 queued calls, and its operator
    org_id, key = api.new_key(lines=4)
    operator_key = api.new_operator_key()
    request_id = f"lines-store-{secrets.token_hex(3)}"
    assert api.post_call(key, seed_with(request_id, destinations=3)).status_code == 200
    # when it asks for its lines
    answer = _lines(api, key)
    # then the store's view: nothing live, the switch's counts unknown
    assert answer.status_code == 200
    assert answer.json() == {
        "maxConcurrentCalls": 4, "cps": 5.0, "busyFromOtherApps": None, "roboCallsLive": 0,
        "dialsInFlight": None, "free": 4, "queued": 3,
    }
    # when the operator changes its line count and pace
    changed = api.set_lines(operator_key, org_id, {"maxConcurrentCalls": 10, "cps": 2.5})
    # then the change is stored and shown
    assert changed.status_code == 200, changed.text
    assert changed.json()["maxConcurrentCalls"] == 10
    assert changed.json()["cps"] == 2.5
    assert _lines(api, key).json()["free"] == 10
    # and one field alone changes only that one
    assert api.set_lines(operator_key, org_id, {"cps": 1}).json()["maxConcurrentCalls"] == 10
    _leave_nothing_queued(api, key, request_id)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"maxConcurrentCalls": -1}, "maxConcurrentCalls"),
        ({"maxConcurrentCalls": 2.5}, "maxConcurrentCalls"),
        ({"cps": 0}, "cps"),
        ({"lines": 4}, "lines: unknown field"),
        ({}, "body"),
        ({"lineRule": {"variable": "accountcode", "value": "a,b"}}, "lineRule: "),
        ({"lineRule": {"variable": "account code", "value": "a"}}, "lineRule.variable"),
        ({"lineRule": {"variable": "accountcode"}}, "lineRule"),
    ],
)
def test_a_bad_lines_change_is_a_400_naming_the_field(api: RunningApi, body: Any,
                                                     expected: str):
    org_id, key = api.new_key(lines=4)
    answer = api.set_lines(api.new_operator_key(), org_id, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(expected)
    assert _lines(api, key).json()["maxConcurrentCalls"] == 4  # unchanged

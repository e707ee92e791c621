"""The Robo call API over real HTTP, on SQLite and on PostgreSQL: the seed contract."""

from __future__ import annotations

import json

import requests

from robocall.api.auth import API_KEY_HEADER
from robocall.api.schema import openapi_document
from tests.support.api_server import RunningApi
from tests.support.requests_data import seed_example, seed_with

SEED_DETAIL_KEYS = {"requestId", "caller", "destination", "status", "callFlowSteps", "monitorData"}


def test_the_seed_example_is_accepted_unchanged_and_answered_in_the_status_shape(api: RunningApi):
    # given an organization's key and the seed's example body, byte for byte
    _, key = api.new_key()
    body = seed_example()
    request_id = f"{body['requestId']}"
    # when it is posted
    answer = api.post_call(key, body)
    # then it is stored and answered as the status: submitted, both destinations queued
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["requestId"] == request_id
    assert status["status"] == "submitted"
    assert [d["destination"] for d in status["details"]] == ["+84917660247", "+84912860330"]
    assert all(detail.keys() >= SEED_DETAIL_KEYS for detail in status["details"])
    assert {d["status"] for d in status["details"]} == {"queued"}
    assert status["counts"] == {"queued": 2}
    assert status["total"] == 2
    assert status["nextCursor"] is None


def test_status_reports_the_stored_request(api: RunningApi):
    # given a stored request
    _, key = api.new_key()
    posted = api.post_call(key, seed_with("status-1")).json()
    # when its status is read
    answer = api.status(key, "status-1")
    # then it is the request as stored, call ids included
    assert answer.status_code == 200
    status = answer.json()
    assert status["details"] == posted["details"]
    detail = status["details"][0]
    assert detail["caller"] == "+6582674904"
    assert detail["callFlowSteps"] == [] and detail["monitorData"] == []
    assert detail["hangupCause"] is None and detail["answeredAt"] is None
    assert len({d["callId"] for d in status["details"]}) == 2


def test_an_identical_retry_answers_the_current_status_and_stores_nothing_new(api: RunningApi):
    # given a stored request
    _, key = api.new_key()
    body = seed_with("retry-1")
    first = api.post_call(key, body).json()
    # when the same body is posted again, keys in another order and other spacing
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=3)
    again = requests.post(api.url("/v1/call"), data=reordered, timeout=30,
                          headers={API_KEY_HEADER: key, "Content-Type": "application/json"})
    # then the answer is the same request, with the same calls
    assert again.status_code == 200
    assert again.json()["details"] == first["details"]
    assert again.json()["total"] == 2


def test_the_same_request_id_with_another_body_is_a_conflict(api: RunningApi):
    # given a stored request
    _, key = api.new_key()
    api.post_call(key, seed_with("conflict-1"))
    # when another body is posted under its requestId
    other = seed_with("conflict-1")
    other["enableCallRecording"] = False
    answer = api.post_call(key, other)
    # then 409, and the stored request is unchanged
    assert answer.status_code == 409
    assert answer.json()["status"] == "error"
    assert "conflict-1" in answer.json()["message"]
    assert api.status(key, "conflict-1").json()["total"] == 2


def test_two_organizations_may_use_the_same_request_id(api: RunningApi):
    # given two organizations
    _, first_key = api.new_key()
    _, second_key = api.new_key()
    # when both post requestId "shared"
    first = api.post_call(first_key, seed_with("shared"))
    second = api.post_call(second_key, seed_with("shared", destinations=3))
    # then each has its own request
    assert first.status_code == second.status_code == 200
    assert api.status(first_key, "shared").json()["total"] == 2
    assert api.status(second_key, "shared").json()["total"] == 3


def test_another_organizations_request_is_not_found(api: RunningApi):
    # given a request of one organization
    _, owner_key = api.new_key()
    _, stranger_key = api.new_key()
    api.post_call(owner_key, seed_with("private-1"))
    # when another organization asks for it
    answer = api.status(stranger_key, "private-1")
    # then it does not exist for them
    assert answer.status_code == 404
    assert answer.json() == {"status": "error", "message": "no request private-1"}


def test_a_missing_or_unknown_key_is_refused(api: RunningApi):
    # given no key, and a key nobody issued
    no_key = requests.post(api.url("/v1/call"), json=seed_example(), timeout=30)
    bad_key = api.post_call("rk_not-a-key", seed_example())
    # then both are 401 in the error shape
    assert no_key.status_code == bad_key.status_code == 401
    assert no_key.json()["status"] == "error"
    assert API_KEY_HEADER in no_key.json()["message"]
    assert bad_key.json()["message"] == "unknown API key"


def test_paging_walks_every_call_once_in_order(api: RunningApi):
    # given a request of 250 destinations
    _, key = api.new_key()
    api.post_call(key, seed_with("paged", destinations=250))
    # when its status is read page by page
    phones: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.status(key, "paged", **params).json()
        phones += [detail["destination"] for detail in page["details"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # then three pages hold every destination once, in submission order
    assert pages == 3
    assert phones == [f"+8491{index:07d}" for index in range(250)]


def test_a_bad_limit_or_cursor_is_a_400(api: RunningApi):
    # given a stored request
    _, key = api.new_key()
    api.post_call(key, seed_with("paged-bad"))
    # when paged with a limit out of range and a made-up cursor
    big = api.status(key, "paged-bad", limit=5000)
    forged = api.status(key, "paged-bad", cursor="bm90LWEtY3Vyc29y")
    # then both are refused, naming the parameter
    assert big.status_code == forged.status_code == 400
    assert big.json()["message"].startswith("limit: ")
    assert forged.json()["message"].startswith("cursor: ")


def test_the_openapi_document_is_served_without_a_key(api: RunningApi):
    # when the contract document is fetched
    answer = requests.get(api.url("/v1/openapi.json"), timeout=30)
    # then it is the document validation uses
    assert answer.status_code == 200
    assert answer.json() == openapi_document()
    assert set(answer.json()["paths"]) == {
        "/v1/call", "/v1/status/{requestId}", "/v1/call/{requestId}", "/v1/lines",
        "/v1/webhooks/deliveries", "/v1/organizations", "/v1/organizations/{orgId}/lines",
    }


def test_unknown_routes_and_methods_answer_in_the_error_shape(api: RunningApi):
    # when a route does not exist, and a method is not allowed
    missing = requests.get(api.url("/v1/nothing"), timeout=30)
    wrong_method = requests.delete(api.url("/v1/openapi.json"), timeout=30)
    # then both answer {"status": "error", ...}
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    assert wrong_method.status_code == 405 and wrong_method.json()["status"] == "error"

"""Webhooks' pure parts: the callbackUrl check, event bodies, signatures, backoff, redaction."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from robocall.calls.webhooks import (
    backoff_seconds,
    event_body,
    new_webhook_secret,
    redact_url,
    sign,
)
from robocall.errors import InputError
from robocall.flow.parse import MAX_CALLBACK_URL_CHARS, parse_call_request
from robocall.store.records import CallTicket

SEED = json.loads((Path(__file__).parents[1] / "support" / "seed_example_request.json").read_text())
TICKET = CallTicket(
    call_id=42,
    request_id="request_10",
    organization_id="org_1",
    phone="+6580000001",
    caller="+6582674904",
    properties={},
    channel_uuid="3f1c0000-0000-4000-8000-000000000001",
    line_variable=("accountcode", "org_1"),
    record=False,
)


def _with_callback(url: object) -> dict:
    body = copy.deepcopy(SEED)
    body["callbackUrl"] = url
    return body


def _parse(body: dict):
    return parse_call_request(body, languages={"en"}, max_destinations=10)


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/robocall", "http://127.0.0.1:8081/h?token=abc",
     "HTTPS://user:pw@example.com"],
)
def test_an_http_or_https_callback_url_is_kept_with_the_request(url):
    assert _parse(_with_callback(url)).callback_url == url


def test_a_request_without_a_callback_url_has_none():
    assert _parse(copy.deepcopy(SEED)).callback_url is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "must be an http:// or https:// URL"),
        ("file:///etc/passwd", "must be an http:// or https:// URL"),
        ("example.com/hook", "must be an http:// or https:// URL"),
        ("https:///no-host", "has no host"),
        ("https://example.com:99999/", "is not a valid URL (Port out of range 0-65535)"),
        ("https://example.com/a b", "may not contain spaces or control characters"),
        ("https://example.com/\r\nX-Evil: 1", "may not contain spaces or control characters"),
        ("https://example.com/#frag", "may not have a #fragment (it is never sent)"),
        ("https://" + "a" * MAX_CALLBACK_URL_CHARS, "is longer than 2000 characters"),
        (12, "must be a URL (text)"),
    ],
)
def test_a_bad_callback_url_is_refused_with_its_path(url, problem):
    with pytest.raises(InputError) as refused:
        _parse(_with_callback(url))
    assert str(refused.value) == f"callbackUrl: {problem}"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"event":"call.dialing"}'
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_test", 1700000000, body) == f"v1={expected}"
    # another timestamp or body signs differently
    assert sign("whsec_test", 1700000001, body) != sign("whsec_test", 1700000000, body)
    assert sign("whsec_test", 1700000000, body + b" ") != sign("whsec_test", 1700000000, body)


def test_secrets_are_fresh_and_long():
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first != second and first.startswith("whsec_") and len(first) >= 40


def test_backoff_doubles_from_its_base_and_eight_attempts_span_about_an_hour():
    assert [backoff_seconds(n, 30.0) for n in range(1, 8)] == [
        30, 60, 120, 240, 480, 960, 1920
    ]
    assert sum(backoff_seconds(n, 30.0) for n in range(1, 8)) == 3810


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@hooks.example.com/x?token=t#f", "https://hooks.example.com/x"),
        ("http://127.0.0.1:8081/h", "http://127.0.0.1:8081/h"),
        ("http://[::1]:9000/h?k=v", "http://[::1]:9000/h"),
    ],
)
def test_a_url_is_shown_without_credentials_or_query(url, shown):
    assert redact_url(url) == shown


def test_an_event_body_says_who_what_and_when_with_the_moment_detail():
    at = datetime(2026, 11, 26, 21, 0, 0, 500000, tzinfo=UTC)
    body = json.loads(event_body("call.completed", TICKET, at, "evt1", status="completed",
                                 hangupCause="NORMAL_CLEARING", durationSeconds=3.5))
    assert body == {
        "eventId": "evt1",
        "event": "call.completed",
        "requestId": "request_10",
        "callId": "42",
        "destination": "+6580000001",
        "caller": "+6582674904",
        "timestamp": "2026-11-26T21:00:00.500000Z",
        "status": "completed",
        "hangupCause": "NORMAL_CLEARING",
        "durationSeconds": 3.5,
    }

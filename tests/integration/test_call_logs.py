"""A real call's log lines, as JSON, name the call and its channel: a PBX admin goes from a line
to ``uuid_dump <channel_uuid>``."""

from __future__ import annotations

import io
import logging
import secrets

import orjson
import pytest

from robocall.logs import make_handler
from robocall.testing import Callee

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def json_log():
    """robocall's INFO lines as JSON, for this test."""
    stream = io.StringIO()
    handler = make_handler(json_lines=True, stream=stream)
    logger = logging.getLogger("robocall")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_calls_log_lines_carry_its_request_call_and_channel(start_service, json_log):
    # given a running robocall, one callee busy
    running = start_service({"+6584000002": Callee(outcome="busy", ring=False)})
    request_id = f"logs-{secrets.token_hex(3)}"
    body = {
        "requestId": request_id,
        "destinations": [
            {"phone": "+6584000001", "caller": "+6582674904"},
            {"phone": "+6584000002", "caller": "+6582674904"},
        ],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello there."}}]},
    }
    running.warm_prompts(body)
    # when the request runs
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(request_id)
    # then each call's dialing and end lines carry its ids and channel uuid
    lines = [orjson.loads(line) for line in json_log.getvalue().splitlines()]
    for detail in final["details"]:
        mine = [line for line in lines if line.get("call_id") == detail["callId"]]
        messages = [line["message"] for line in mine]
        assert f"call {detail['callId']}: dialing {detail['destination']}" in messages
        assert f"call {detail['callId']}: {detail['status']} ({detail['hangupCause']})" in messages
        uuid = detail["monitorData"][0]["uuid"]
        assert {line["channel_uuid"] for line in mine} == {uuid}
        assert {line["request_id"] for line in mine} == {request_id}
        assert {line["organization"] for line in mine} == {running.org_id}

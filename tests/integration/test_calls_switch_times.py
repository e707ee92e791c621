"""A call's answer time and duration come from the switch's clock, not from when robocall got
round to reading the events.

On the lab FreeSWITCH a callee that hangs up 1.0 s after answering was reported with a
duration of 0.74 s: robocall's greenlets were busy (renders) and read the CHANNEL_ANSWER late.
FreeSWITCH stamps every channel event with ``Caller-Channel-Answered-Time`` and
``Caller-Channel-Hangup-Time`` (microseconds); the runner reports those. Here robocall's own
clock is stopped in 2001, so any time it supplied would show.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest

from robocall.testing import Callee
from tests.support.requests_data import seed_with
from tests.support.service import ServiceStarter

pytestmark = pytest.mark.usefixtures("repo")

STOPPED_CLOCK = datetime(2001, 1, 1, tzinfo=UTC).timestamp()


def _parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_answer_time_and_duration_are_the_switchs(start_service: ServiceStarter) -> None:
    # given robocall whose own wall clock is stuck, and a callee that talks for a while
    running = start_service(
        default=Callee(answer_after_ms=100, hangup_after_ms=5000), clock=lambda: STOPPED_CLOCK
    )
    request_id = f"times-{secrets.token_hex(3)}"
    body = seed_with(request_id, destinations=1)
    before = datetime.now(UTC).timestamp()
    # when a call is answered and the callee hangs up
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(request_id)
    after = datetime.now(UTC).timestamp()
    # then its answer time is the switch's (today, within the call), and its duration is the
    # switch's hangup time minus its answer time
    (detail,) = final["details"]
    assert detail["status"] == "completed"
    answered = _parse(detail["answeredAt"])
    assert before <= answered <= after
    assert 0 < detail["durationSeconds"] <= after - answered

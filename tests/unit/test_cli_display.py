"""What the command line shows of calls, what the demo expects of them, which exit code an
error gives. Pure: dicts in, strings out."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from robocall import demo, errors
from robocall.cli import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    exit_code_for,
)
from robocall.cli.display import call_row, counts_text, finished_calls, is_final, watch
from tests.support.requests_data import seed_example


def _step(name: str, digits: str = "", transfer: str = "") -> dict:
    return {"stepName": name, "info": {"status": "success_ok", "call_state": "ongoing",
                                       "userPressedDigits": digits, "transfer_status": transfer}}


def test_a_call_row_joins_the_digits_of_each_gather_and_takes_the_transfer_outcome():
    detail = {
        "destination": "+6580000001", "status": "completed", "durationSeconds": 12.34,
        "hangupCause": "NORMAL_CLEARING",
        "callFlowSteps": [_step("play"), _step("gather", "1"), _step("gather", "23"),
                          _step("transfer", transfer="answered")],
    }
    assert call_row(detail) == (
        "+6580000001", "completed", "1 23", "answered", "12.3 s", "NORMAL_CLEARING"
    )


def test_a_call_never_answered_shows_dashes():
    detail = {"destination": "+6580000005", "status": "failed", "callFlowSteps": [],
              "durationSeconds": None, "hangupCause": "USER_BUSY"}
    assert call_row(detail) == ("+6580000005", "failed", "-", "-", "-", "USER_BUSY")


def test_counts_read_from_waiting_to_done_and_leave_out_zeros():
    counts = {"failed": 1, "queued": 4, "completed": 2, "dialing": 0, "onProgress": 3}
    assert counts_text(counts) == "queued 4 · onProgress 3 · completed 2 · failed 1"
    assert finished_calls(counts) == 3


@pytest.mark.parametrize(("status", "final"), [
    ("submitted", False), ("onProgress", False), ("completed", True), ("cancelled", True),
])
def test_a_request_is_final_when_completed_or_cancelled(status, final):
    assert is_final({"status": status}) is final


def test_the_demo_request_is_the_seed_example_plus_four_destinations():
    body = demo.request_body("any")
    seed = seed_example()
    assert body["requestId"] == "any"
    assert body["callFlow"] == seed["callFlow"]
    assert body["destinations"][:2] == seed["destinations"]
    assert [d["phone"] for d in body["destinations"]] == list(demo.EXPECTED)
    assert list(demo.STORIES) == list(demo.EXPECTED)
    # every demo destination has a scripted callee, and extension 1000 answers transfers
    assert set(demo.callee_book().callees) == {*demo.EXPECTED, "1000"}
    assert json.loads(json.dumps(body)) == body


def test_the_demo_names_every_call_that_did_not_do_what_was_scripted():
    rows = [(destination, *expected, "1.0 s", "NORMAL_CLEARING")
            for destination, expected in demo.EXPECTED.items()]
    assert demo.mismatches(rows) == []
    rows[1] = ("+84912860330", "completed", "0", "no_answer", "1.0 s", "NORMAL_CLEARING")
    del rows[5]
    assert demo.mismatches(rows) == [
        "+84912860330: expected ('completed', '0', 'answered'), "
        "got ('completed', '0', 'no_answer')",
        "+84913000006: expected ('failed', '-', '-'), got None",
    ]


@pytest.mark.parametrize(("error", "code"), [
    (errors.ConfigError("x"), EXIT_USAGE),
    (errors.InputError("file.json", "is not JSON"), EXIT_REJECTED),
    (errors.Conflict("requestId reused"), EXIT_REJECTED),
    (errors.AuthError("no"), EXIT_AUTH),
    (errors.NotFound("no"), EXIT_NOT_FOUND),
    (errors.ApiUnreachable("down"), EXIT_UNREACHABLE),
    (errors.ApiFailed("500"), EXIT_FAILED),
    (errors.SwitchError("x"), EXIT_FAILED),
])
def test_each_error_has_its_exit_code(error, code):
    assert exit_code_for(error)[0] == code


def _page(status: str, **counts: int) -> dict:
    return {"requestId": "request_10", "status": status, "total": 2, "counts": counts}


def test_without_a_terminal_the_watch_prints_one_line_per_change():
    # given a request polled five times, twice without change
    pages = iter([
        _page("submitted", queued=2),
        _page("onProgress", dialing=1, queued=1),
        _page("onProgress", dialing=1, queued=1),
        _page("onProgress", onProgress=1, failed=1),
        _page("completed", completed=1, failed=1),
    ])
    # when it is watched with output to a pipe (no terminal)
    out = io.StringIO()
    final = watch(lambda: next(pages), Console(file=out), poll_seconds=0)
    # then each change is one plain line, and the watch ends on the final page
    assert out.getvalue().splitlines() == [
        "request_10 submitted: 2 calls (queued 2)",
        "request_10 onProgress: 2 calls (queued 1 · dialing 1)",
        "request_10 onProgress: 2 calls (onProgress 1 · failed 1)",
        "request_10 completed: 2 calls (completed 1 · failed 1)",
    ]
    assert final["status"] == "completed"

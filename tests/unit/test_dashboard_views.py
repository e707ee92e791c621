"""The dashboard's bars and step lines, computed from plain values."""

from __future__ import annotations

from robocall.dashboard.views import gauge, progress, step_line
from robocall.dispatch.dispatcher import LineReport
from robocall.flow.actions import StepResult
from robocall.flow.status import CallState, DialResult, StepName, StepStatus


def test_a_progress_bar_orders_statuses_done_first_and_counts_the_final_ones():
    bar = progress({"queued": 5, "completed": 3, "failed": 1, "dialing": 1}, total=10)
    assert [(s.name, s.count, s.percent) for s in bar.segments] == [
        ("completed", 3, 30.0), ("failed", 1, 10.0), ("dialing", 1, 10.0), ("queued", 5, 50.0),
    ]
    assert (bar.final, bar.percent_final) == (4, 40)


def test_an_empty_request_is_shown_done_rather_than_divided_by_zero():
    assert progress({}, total=0).percent_final == 100


def test_the_lines_gauge_splits_robo_other_in_flight_and_free():
    shown = gauge(LineReport(lines=6, robo=3, other=1, in_flight=1, free=1))
    assert [(s.name, s.count, round(s.percent, 2)) for s in shown.segments] == [
        ("robo", 3, 50.0), ("other", 1, 16.67), ("in_flight", 1, 16.67), ("free", 1, 16.67),
    ]


def test_other_apps_over_the_limit_scale_the_gauge_instead_of_overflowing_it():
    shown = gauge(LineReport(lines=4, robo=0, other=8, in_flight=0, free=0))
    assert sum(s.percent for s in shown.segments) == 100.0
    assert shown.lines == 4


def test_an_organization_the_dispatcher_does_not_know_yet_has_no_gauge():
    assert gauge(None).known is False


def test_step_lines_say_what_happened_as_the_api_names_it():
    # given step results of a gather, a failed transfer and a call never answered
    gather = StepResult("1", StepName.GATHER, StepStatus.SUCCESS_OK, CallState.ONGOING,
                        user_pressed_digits="1", attempts=1)
    transfer = StepResult("2", StepName.TRANSFER, StepStatus.ERROR_TRANSFER_FAILED,
                          CallState.ENDED, transfer_status=DialResult.BUSY)
    unanswered = StepResult("1", StepName.PLAY, StepStatus.ERROR_NOT_ANSWERED, CallState.ENDED,
                            call_status=DialResult.NO_ANSWER)
    # then each line says it in the API's words
    assert step_line(gather) == "gather: sucess_ok, pressed 1"
    assert step_line(transfer) == "transfer: error_transfer_failed, transfer busy"
    assert step_line(unanswered) == "play: error_not_answered, no_answer"

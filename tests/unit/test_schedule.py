"""When a queued call may start: retry decisions and calling windows, on a given clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from robocall.flow.model import CallingWindow, DailyWindow, RetryOutcome, RetryPolicy
from robocall.flow.schedule import (
    is_open,
    next_start,
    retry_outcome,
    should_retry,
    window_zones,
    zones_for_number,
)

OFFICE = DailyWindow(start=time(9), end=time(18), time_zone="destination")
SINGAPORE = ("Asia/Singapore",)
ALL_OUTCOMES = frozenset(RetryOutcome)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_definite_causes_map_to_outcomes_and_unknown_fates_to_none():
    assert retry_outcome("USER_BUSY") is RetryOutcome.BUSY
    assert retry_outcome("NO_ANSWER") is RetryOutcome.NO_ANSWER
    assert retry_outcome("CALL_REJECTED") is RetryOutcome.FAILED
    # the switch never said what became of these: the callee may have been rung
    for unknown in ("SWITCH_CONNECTION_LOST", "RECOVERY_ON_TIMER_EXPIRE", "UNKNOWN", "bgapi", ""):
        assert retry_outcome(unknown) is None


def test_a_policy_retries_only_its_outcomes_and_only_while_attempts_are_left():
    busy_only = RetryPolicy(max_attempts=3, on=frozenset({RetryOutcome.BUSY}))
    assert should_retry(busy_only, "USER_BUSY", attempts_made=1)
    assert should_retry(busy_only, "USER_BUSY", attempts_made=2)
    assert not should_retry(busy_only, "USER_BUSY", attempts_made=3)
    assert not should_retry(busy_only, "NO_ANSWER", attempts_made=1)
    everything = RetryPolicy(max_attempts=10, on=ALL_OUTCOMES)
    assert not should_retry(everything, "SWITCH_CONNECTION_LOST", attempts_made=1)
    assert not should_retry(None, "USER_BUSY", attempts_made=1)


def test_zones_come_from_the_number_and_unknown_numbers_have_none():
    assert zones_for_number("+6582674904") == SINGAPORE
    assert zones_for_number("+442071234567") == ("Europe/London",)
    assert zones_for_number("6582674904") == SINGAPORE  # the leading + is optional
    assert zones_for_number("+19999999999") == ()  # +1 spans zones; no area matches this one
    assert zones_for_number("+6580000201") == SINGAPORE  # one zone: the calling code says it
    assert zones_for_number("+999123") == ()  # no such calling code
    assert len(zones_for_number("+79161234567")) > 1  # a mobile range of several zones
    fixed = DailyWindow(start=time(9), end=time(18), time_zone="Asia/Tokyo")
    assert window_zones(fixed, "+6582674904") == ("Asia/Tokyo",)
    assert window_zones(OFFICE, "+6582674904") == SINGAPORE


def test_office_hours_are_read_in_the_zone():
    # 01:00 UTC is 09:00 in Singapore (UTC+8): the window opens exactly then
    assert not is_open(OFFICE, SINGAPORE, utc(2026, 3, 2, 0, 59))
    assert is_open(OFFICE, SINGAPORE, utc(2026, 3, 2, 1, 0))
    assert is_open(OFFICE, SINGAPORE, utc(2026, 3, 2, 9, 59))
    assert not is_open(OFFICE, SINGAPORE, utc(2026, 3, 2, 10, 0))  # 18:00 is closed
    assert not is_open(OFFICE, (), utc(2026, 3, 2, 3, 0))  # no zone, never open


def test_hours_that_span_midnight():
    night = DailyWindow(start=time(22), end=time(2), time_zone="UTC")
    assert is_open(night, ("UTC",), utc(2026, 3, 2, 23, 30))
    assert is_open(night, ("UTC",), utc(2026, 3, 3, 1, 59))
    assert not is_open(night, ("UTC",), utc(2026, 3, 3, 2, 0))


def test_the_next_start_is_now_the_next_opening_or_none_after_not_after():
    window = CallingWindow(daily=OFFICE)
    now = utc(2026, 3, 2, 3, 0)  # 11:00 in Singapore
    assert next_start(window, SINGAPORE, now) == now
    evening = utc(2026, 3, 2, 11, 0)  # 19:00 in Singapore: tomorrow 09:00 local
    assert next_start(window, SINGAPORE, evening) == utc(2026, 3, 3, 1, 0)
    ending = CallingWindow(not_after=utc(2026, 3, 2, 12, 0), daily=OFFICE)
    assert next_start(ending, SINGAPORE, evening) is None
    starting = CallingWindow(not_before=utc(2026, 3, 5, 0, 0))
    assert next_start(starting, (), now) == utc(2026, 3, 5, 0, 0)


def test_a_number_spanning_zones_is_called_only_when_all_of_them_are_in_hours():
    # London (UTC+0 in March) and Singapore (UTC+8) overlap 09:00-10:00 UTC at 09-18 local
    both = ("Europe/London", "Asia/Singapore")
    start = next_start(CallingWindow(daily=OFFICE), both, utc(2026, 3, 2, 0, 0))
    assert start == utc(2026, 3, 2, 9, 0)
    assert is_open(OFFICE, both, start + timedelta(minutes=59))
    assert not is_open(OFFICE, both, start + timedelta(minutes=60))
    # zones twelve hours apart never share office hours: no start at all
    apart = ("Pacific/Kiritimati", "Europe/London")
    assert next_start(CallingWindow(daily=OFFICE), apart, utc(2026, 3, 2, 0, 0)) is None

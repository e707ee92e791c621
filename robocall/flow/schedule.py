"""When a queued call may be dialled: its request's calling window, and its retry policy. Pure.

The store asks these questions while it claims calls (``store.dialing``) and when an attempt
ends; the clock is always an argument. A daily window in the destination's time zone takes the
zone from the number (Google's libphonenumber data, the ``phonenumbers`` package). A number
whose prefix spans several zones (a mobile range of a large country) is called only when the
window is open in every one of them: nobody is rung at night because their zone was guessed.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers import timezone as phone_time_zones
from phonenumbers.tzdata import TIMEZONE_DATA

from robocall.flow.model import (
    DESTINATION_TIME_ZONE,
    CallingWindow,
    DailyWindow,
    RetryOutcome,
    RetryPolicy,
)

# How far ahead to look for a moment the window is open in all of a number's zones.
LOOKAHEAD_DAYS = 8
_UNKNOWN_ZONE = "Etc/Unknown"

# FreeSWITCH hangup causes that say for certain how an unanswered call ended. Anything else
# (a lost connection, a timed-out command, "UNKNOWN") leaves the call's fate unknown: the
# callee may have been rung, so such a call is never dialled again.
_DEFINITE_OUTCOMES: dict[str, RetryOutcome] = {
    "USER_BUSY": RetryOutcome.BUSY,
    "NO_ANSWER": RetryOutcome.NO_ANSWER,
    "NO_USER_RESPONSE": RetryOutcome.NO_ANSWER,
    "ALLOTTED_TIMEOUT": RetryOutcome.NO_ANSWER,
    "CALL_REJECTED": RetryOutcome.FAILED,
    "NORMAL_TEMPORARY_FAILURE": RetryOutcome.FAILED,
    "NETWORK_OUT_OF_ORDER": RetryOutcome.FAILED,
    "DESTINATION_OUT_OF_ORDER": RetryOutcome.FAILED,
    "NORMAL_CIRCUIT_CONGESTION": RetryOutcome.FAILED,
    "SWITCH_CONGESTION": RetryOutcome.FAILED,
    "SUBSCRIBER_ABSENT": RetryOutcome.FAILED,
    "GATEWAY_DOWN": RetryOutcome.FAILED,
    "UNALLOCATED_NUMBER": RetryOutcome.FAILED,
    "NO_ROUTE_DESTINATION": RetryOutcome.FAILED,
    "EXCHANGE_ROUTING_ERROR": RetryOutcome.FAILED,
    # robocall's own cause for a call it hung up on because a machine answered
    "MACHINE_DETECTED": RetryOutcome.MACHINE,
}


def retry_outcome(hangup_cause: str) -> RetryOutcome | None:
    """The definite outcome a hangup cause stands for, or None when it is not definite."""
    return _DEFINITE_OUTCOMES.get(hangup_cause)


def should_retry(policy: RetryPolicy | None, hangup_cause: str, attempts_made: int) -> bool:
    """Whether an unanswered attempt ending with ``hangup_cause`` is dialled again."""
    if policy is None or attempts_made >= policy.max_attempts:
        return False
    outcome = retry_outcome(hangup_cause)
    return outcome is not None and outcome in policy.on


def zones_for_number(phone: str) -> tuple[str, ...]:
    """The IANA time zones a number may be in; empty when none is known.

    A country with one zone answers from its calling code alone (a table look-up; a full
    parse costs ~20 us, seconds for a 100,000-number request). For a country with several
    zones the number is parsed, and its area code narrows them where the data can.
    """
    digits = phone.removeprefix("+")
    country_zones = _country_zones(_country_code(digits))
    if len(country_zones) == 1:
        return country_zones
    return _zones_by_area(digits) if country_zones else ()


def zone_calling_code(phone: str) -> str | None:
    """The number's calling code when that alone gives its zone (a one-zone country), else
    None: every number with that code is in the same zone."""
    code = _country_code(phone.removeprefix("+"))
    return code if len(_country_zones(code)) == 1 else None


def _country_code(digits: str) -> str:
    # calling codes are prefix-free: the first one that exists is the number's
    for length in (1, 2, 3):
        if digits[:length].isdigit() and int(digits[:length]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:length]
    return ""


@functools.cache
def _country_zones(country_code: str) -> tuple[str, ...]:
    zones = tuple(TIMEZONE_DATA.get(country_code, ()) if country_code else ())
    return tuple(zone for zone in zones if zone != _UNKNOWN_ZONE and _known_zone(zone))


@functools.lru_cache(maxsize=65536)
def _zones_by_area(digits: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(f"+{digits}")
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(
        zone for zone in phone_time_zones.time_zones_for_number(number) if zone != _UNKNOWN_ZONE
    )
    return zones if all(map(_known_zone, zones)) else ()


def window_zones(daily: DailyWindow, phone: str) -> tuple[str, ...]:
    """The zones a daily window is read in for one destination."""
    if daily.time_zone == DESTINATION_TIME_ZONE:
        return zones_for_number(phone)
    return (daily.time_zone,)


def is_open(daily: DailyWindow, zones: tuple[str, ...], moment: datetime) -> bool:
    """Whether ``moment`` (aware) lies within the daily hours in every one of ``zones``."""
    return bool(zones) and all(_open_in(daily, ZoneInfo(zone), moment) for zone in zones)


def next_start(window: CallingWindow, zones: tuple[str, ...], moment: datetime) -> datetime | None:
    """The first moment at or after ``moment`` (aware) when a call may start; None if none
    comes before the window's end (``notAfter``, or no open hour in the look-ahead)."""
    earliest = moment if window.not_before is None else max(moment, window.not_before)
    start: datetime | None = earliest
    if window.daily is not None:
        start = _next_open(window.daily, zones, earliest)
    if start is None or (window.not_after is not None and start >= window.not_after):
        return None
    return start


def _next_open(daily: DailyWindow, zones: tuple[str, ...], moment: datetime) -> datetime | None:
    if not zones:
        return None
    if is_open(daily, zones, moment):
        return moment
    # Where several zones' hours overlap, the overlap begins when one of them opens.
    candidates = sorted(
        opening
        for zone in zones
        for opening in _openings(daily, ZoneInfo(zone), moment)
        if opening > moment
    )
    return next((c for c in candidates if is_open(daily, zones, c)), None)


def _openings(daily: DailyWindow, zone: ZoneInfo, moment: datetime) -> list[datetime]:
    today = moment.astimezone(zone).date()
    return [
        datetime.combine(today + timedelta(days=offset), daily.start, tzinfo=zone).astimezone(UTC)
        for offset in range(-1, LOOKAHEAD_DAYS)
    ]


def _open_in(daily: DailyWindow, zone: ZoneInfo, moment: datetime) -> bool:
    local = moment.astimezone(zone).time().replace(tzinfo=None)
    if daily.start < daily.end:
        return daily.start <= local < daily.end
    return local >= daily.start or local < daily.end  # the hours span midnight


@functools.cache
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    return _known_zone(name)

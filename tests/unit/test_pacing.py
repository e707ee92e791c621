"""Free lines and calls-per-second budgets."""

from __future__ import annotations

import pytest

from robocall.dispatch.lines import LineUsage
from robocall.dispatch.pacing import TokenBucket, dials_allowed, free_lines


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("capacity", "robo", "other", "in_flight", "expected"),
    [
        (6, 0, 2, 0, 4),  # the seed's moment t1: 2 calls from BizPhone -> 4 robo calls
        (6, 0, 5, 0, 1),  # the seed's moment t2: 5 busy elsewhere -> 1
        (6, 3, 2, 1, 0),
        (6, 4, 5, 0, 0),  # over capacity (lines taken elsewhere meanwhile): never negative
        (0, 0, 0, 0, 0),
    ],
)
def test_free_lines(capacity, robo, other, in_flight, expected):
    assert free_lines(capacity, LineUsage(robo=robo, other=other), in_flight) == expected


def test_bucket_starts_full_and_refills_at_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert bucket.available() == 5
    bucket.take(5)
    assert bucket.available() == 0
    clock.now += 0.25
    assert bucket.available() == 2
    assert bucket.seconds_until(3) == pytest.approx(0.05)
    clock.now += 10
    assert bucket.available() == 5  # capped at the burst


def test_taking_more_than_available_is_refused():
    bucket = TokenBucket(rate=1, burst=1, clock=FakeClock())
    bucket.take()
    with pytest.raises(ValueError):
        bucket.take()


def test_dials_allowed_is_bounded_by_lines_and_every_budget():
    clock = FakeClock()
    organization = TokenBucket(rate=5, burst=5, clock=clock)
    switch = TokenBucket(rate=25, burst=3, clock=clock)
    assert dials_allowed(10, organization, switch) == 3
    assert dials_allowed(2, organization, switch) == 2
    assert dials_allowed(0, organization, switch) == 0


def test_changing_the_rate_keeps_earned_tokens_within_the_new_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock)
    bucket.set_rate(rate=2, burst=4)
    assert bucket.available() == 4
    with pytest.raises(ValueError):
        bucket.set_rate(rate=0, burst=1)

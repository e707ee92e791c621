"""The dispatch delay: each released line is timed to the next dial of its organization."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from robocall.metrics import DispatchTimer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def observed(registry: CollectorRegistry) -> tuple[float, float]:
    count = registry.get_sample_value("robocall_dispatch_delay_seconds_count")
    total = registry.get_sample_value("robocall_dispatch_delay_seconds_sum")
    return count, total


def test_each_dial_takes_the_oldest_released_line_of_its_organization():
    registry, clock = CollectorRegistry(), Clock()
    timer = DispatchTimer(registry, clock=clock)
    timer.line_freed("a")
    clock.now += 0.5
    timer.line_freed("a")
    timer.line_freed("b")
    clock.now += 0.25
    timer.dispatched("a", 1)  # 0.75 s after the first release
    timer.dispatched("a", 2)  # 0.25 s after the second
    assert observed(registry) == (2.0, 1.0)
    assert registry.get_sample_value("robocall_dispatch_delay_seconds_bucket", {"le": "0.25"}) == 1


def test_a_dial_with_no_released_line_waiting_is_not_timed():
    registry = CollectorRegistry()
    timer = DispatchTimer(registry, clock=Clock())
    timer.dispatched("a", 1)  # a new request on idle lines
    assert observed(registry) == (0.0, 0.0)


def test_lines_released_while_nothing_was_queued_are_forgotten():
    registry, clock = CollectorRegistry(), Clock()
    timer = DispatchTimer(registry, clock=clock)
    timer.line_freed("a")
    timer.queue_drained("a")  # nobody waited for that line
    clock.now += 600
    timer.dispatched("a", 1)  # ten minutes later a new request: not a slow reuse
    assert observed(registry) == (0.0, 0.0)

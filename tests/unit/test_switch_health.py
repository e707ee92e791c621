"""SwitchHealth: the switch's load, read from its heartbeats and reply times, as a dial rate."""

from __future__ import annotations

import pytest

from robocall.dispatch.health import HealthLimits, SwitchHealth
from robocall.esl.protocol import Event


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def heartbeat(idle_cpu: str, sessions: str = "10", max_sessions: str = "1000") -> Event:
    # the headers a FreeSWITCH 1.11 HEARTBEAT carries for these
    return Event({"Event-Name": "HEARTBEAT", "Idle-CPU": idle_cpu,
                  "Session-Count": sessions, "Max-Sessions": max_sessions})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> SwitchHealth:
    return SwitchHealth(HealthLimits(), clock=clock)


def test_an_idle_switch_dials_at_full_rate(health: SwitchHealth) -> None:
    health.observe(heartbeat("95.370000"))
    health.observe_reply(0.002)
    assert health.rate_factor() == 1.0


def test_a_saturated_cpu_slows_dialling_at_once_to_the_floor(health: SwitchHealth) -> None:
    health.observe(heartbeat("1.5"))
    assert health.rate_factor() == pytest.approx(0.25)


def test_the_factor_follows_idle_cpu_between_its_limits(health: SwitchHealth) -> None:
    # 10 % idle or more: no concern; none: the floor; a straight line between
    health.observe(heartbeat("5"))
    assert health.rate_factor() == pytest.approx(0.5)


def test_sessions_near_the_limit_slow_dialling(health: SwitchHealth) -> None:
    health.observe(heartbeat("90", sessions="950", max_sessions="1000"))
    assert health.rate_factor() == pytest.approx(0.25)


def test_late_replies_slow_dialling_and_fade_when_they_stop(
    health: SwitchHealth, clock: Clock
) -> None:
    for _ in range(20):
        health.observe_reply(2.5)
    assert health.rate_factor() == pytest.approx(0.25)
    # no reply for 30 s (6 half-lives): the old latency no longer counts; recovery is gradual
    clock.now += 30
    assert health.rate_factor() == 1.0


def test_recovery_is_gradual_not_one_burst(health: SwitchHealth, clock: Clock) -> None:
    health.observe(heartbeat("0"))
    assert health.rate_factor() == pytest.approx(0.25)
    health.observe(heartbeat("95"))
    clock.now += 1.0
    assert health.rate_factor() == pytest.approx(0.45)  # +0.2 per second
    clock.now += 10.0
    assert health.rate_factor() == 1.0


def test_an_old_heartbeat_says_nothing_about_now(health: SwitchHealth, clock: Clock) -> None:
    health.observe(heartbeat("0"))
    clock.now += 61
    assert health.rate_factor() == 1.0


def test_other_events_and_garbage_are_ignored(health: SwitchHealth) -> None:
    health.observe(Event({"Event-Name": "CHANNEL_CREATE", "Idle-CPU": "0"}))
    health.observe(heartbeat("not a number", sessions="", max_sessions="0"))
    assert health.rate_factor() == 1.0

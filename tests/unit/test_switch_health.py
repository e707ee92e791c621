"""SwitchHealth: whether the switch is falling behind (its reply, dial and event latencies,
its sessions), as a dial rate; the machine's idle CPU only corroborates."""

from __future__ import annotations

import pytest

from robocall.dispatch.health import BaseLag, HealthLimits, Latency, SwitchHealth
from robocall.esl.protocol import Event

# The switch's clock runs this far from robocall's (another machine, another epoch): only
# differences in the lag count.
SWITCH_OFFSET = 1_733_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def heartbeat(idle_cpu: str, sessions: str = "10", max_sessions: str = "1000") -> Event:
    # the headers a FreeSWITCH 1.11 HEARTBEAT carries for these
    return Event({"Event-Name": "HEARTBEAT", "Idle-CPU": idle_cpu,
                  "Session-Count": sessions, "Max-Sessions": max_sessions})


def stamped(clock: Clock, name: str, late: float = 0.0, uuid: str = "u") -> Event:
    """An event the switch stamped ``late`` seconds before robocall reads it (plus the wire)."""
    stamp = (clock.now + SWITCH_OFFSET - late - 0.002) * 1_000_000
    return Event({"Event-Name": name, "Unique-ID": uuid, "Event-Date-Timestamp": f"{stamp:.0f}"})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> SwitchHealth:
    return SwitchHealth(HealthLimits(), clock=clock)


def test_an_idle_prompt_switch_dials_at_full_rate(health: SwitchHealth, clock: Clock) -> None:
    health.observe(heartbeat("95.370000"))
    health.observe_reply(0.002)
    health.dialled("a")
    clock.now += 0.01
    health.observe(stamped(clock, "CHANNEL_CREATE", uuid="a"))
    assert health.rate_factor() == 1.0


def test_a_busy_machine_alone_does_not_slow_dialling(health: SwitchHealth) -> None:
    # the lab: FreeSWITCH reports the shared machine's idle CPU (0-10 %) while it answers at
    # once; that alone must not cost three quarters of the pace
    health.observe(heartbeat("0.0"))
    health.observe_reply(0.01)
    assert health.rate_factor() == 1.0
    assert health.idle_cpu == 0.0


def test_late_replies_slow_dialling_and_fade_when_they_stop(
    health: SwitchHealth, clock: Clock
) -> None:
    for _ in range(20):
        health.observe_reply(2.5)
    assert health.rate_factor() == pytest.approx(0.25)
    # no reply for 30 s (6 half-lives): the old latency no longer counts; recovery is gradual
    clock.now += 30
    assert health.rate_factor() == 1.0


def test_the_factor_follows_reply_latency_between_its_limits(health: SwitchHealth) -> None:
    # 0.25 s or less: no concern; 2.5 s: the slowest; a straight line between
    health.observe_reply(1.375)
    assert health.rate_factor() == pytest.approx(0.5)


def test_a_busy_machine_makes_a_late_switch_count_double(
    health: SwitchHealth, clock: Clock
) -> None:
    health.observe_reply(0.25)  # at the threshold: no concern on its own
    assert health.rate_factor() == 1.0
    # the machine has nothing left: the same latency is now halfway to the worst (0.125-1.25)
    health.observe(heartbeat("3"))
    assert health.rate_factor() == pytest.approx((1.25 - 0.25) / (1.25 - 0.125))


def test_slow_session_creation_slows_dialling(health: SwitchHealth, clock: Clock) -> None:
    # originates that take the switch 5 s to turn into channels
    for n in range(10):
        health.dialled(f"c{n}")
    clock.now += 5.0
    for n in range(10):
        health.observe(stamped(clock, "CHANNEL_CREATE", uuid=f"c{n}"))
    assert health.signals()["dial_seconds"] == pytest.approx(5.0)
    assert health.rate_factor() == pytest.approx(0.25)


def test_a_refused_dial_is_forgotten_not_counted(health: SwitchHealth, clock: Clock) -> None:
    # a dial the switch refused never has a CHANNEL_CREATE: it is dropped after a minute
    health.dialled("refused")
    clock.now += 61
    health.dialled("next")
    clock.now += 0.05
    health.observe(stamped(clock, "CHANNEL_CREATE", uuid="refused"))  # a stranger by now
    health.observe(stamped(clock, "CHANNEL_CREATE", uuid="next"))
    assert health.signals()["dial_seconds"] == pytest.approx(0.05)
    assert health.rate_factor() == 1.0


def test_channels_robocall_did_not_dial_say_nothing_of_dials(
    health: SwitchHealth, clock: Clock
) -> None:
    health.observe(stamped(clock, "CHANNEL_CREATE", uuid="a callee's leg"))
    assert health.signals()["dial_seconds"] == 0.0


def test_events_falling_behind_the_switch_clock_slow_dialling(
    health: SwitchHealth, clock: Clock
) -> None:
    # prompt events set the base (the clocks' offset), whatever the offset is
    for _ in range(20):
        health.observe(stamped(clock, "CHANNEL_ANSWER"))
        clock.now += 0.05
    assert health.signals()["event_lag_seconds"] == pytest.approx(0.0, abs=1e-6)
    assert health.rate_factor() == 1.0
    # then every event comes 3 s behind its stamp: a queue, the switch's or the reader's
    for _ in range(200):
        health.observe(stamped(clock, "CHANNEL_ANSWER", late=3.0))
        clock.now += 0.01
    assert health.signals()["event_lag_seconds"] == pytest.approx(3.0, rel=0.01)
    assert health.rate_factor() == pytest.approx(0.25)


def test_one_late_event_is_a_dip_not_a_stop(health: SwitchHealth, clock: Clock) -> None:
    for _ in range(20):
        health.observe(stamped(clock, "CHANNEL_ANSWER"))
        clock.now += 0.05
    health.observe(stamped(clock, "CHANNEL_ANSWER", late=2.0))
    assert health.rate_factor() == 1.0  # 5 % of 2 s: under the threshold


def test_sessions_near_the_limit_slow_dialling(health: SwitchHealth) -> None:
    health.observe(heartbeat("90", sessions="950", max_sessions="1000"))
    assert health.rate_factor() == pytest.approx(0.25)


def test_recovery_is_gradual_not_one_burst(health: SwitchHealth, clock: Clock) -> None:
    health.observe(heartbeat("90", sessions="950", max_sessions="1000"))
    assert health.rate_factor() == pytest.approx(0.25)
    health.observe(heartbeat("90", sessions="10", max_sessions="1000"))
    clock.now += 1.0
    assert health.rate_factor() == pytest.approx(0.45)  # +0.2 per second
    clock.now += 10.0
    assert health.rate_factor() == 1.0


def test_an_old_heartbeat_says_nothing_about_now(health: SwitchHealth, clock: Clock) -> None:
    health.observe(heartbeat("0", sessions="990"))
    health.observe_reply(0.25)
    clock.now += 61
    health.observe_reply(0.25)
    assert health.idle_cpu is None
    assert health.signals()["session_share"] is None
    assert health.rate_factor() == 1.0


def test_other_events_and_garbage_are_ignored(health: SwitchHealth) -> None:
    health.observe(Event({"Event-Name": "CHANNEL_CREATE", "Idle-CPU": "0",
                          "Event-Date-Timestamp": "soon"}))
    health.observe(heartbeat("not a number", sessions="", max_sessions="0"))
    assert health.rate_factor() == 1.0


def test_describe_names_every_signal(health: SwitchHealth) -> None:
    health.observe(heartbeat("7", sessions="100", max_sessions="1000"))
    health.observe_reply(0.12)
    assert health.describe() == ("replies 120 ms, dials 0 ms, event lag 0 ms, idle CPU 7%, "
                                 "sessions 10% of the limit")


def test_a_latency_is_smoothed_and_fades() -> None:
    latency = Latency(weight=0.2, half_life=5.0)
    assert latency.value(0.0) == 0.0
    latency.observe(1.0, 0.0)
    latency.observe(0.0, 0.0)
    assert latency.value(0.0) == pytest.approx(0.8)
    assert latency.value(1.0) == pytest.approx(0.8)  # a second without a sample: as it was
    assert latency.value(6.0) == pytest.approx(0.4)


def test_the_base_lag_is_the_least_over_its_window() -> None:
    base = BaseLag(window=30.0, bucket=10.0)
    assert base.add(5.0, 0.0) == 5.0
    assert base.add(7.0, 11.0) == 5.0
    assert base.add(6.0, 21.0) == 5.0
    # 30 s on, the bucket that held 5.0 has left the window
    assert base.add(9.0, 31.0) == 6.0

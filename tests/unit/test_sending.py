"""The send gate: turns in order, transfers first, claims bounded, a closed gate sends nothing."""

from __future__ import annotations

import gevent
import pytest

from robocall.dispatch.sending import CLAIM_AHEAD_SECONDS, SendGate
from robocall.errors import DispatchStopped


def test_calls_leave_in_the_order_they_reach_the_gate_and_a_transfer_goes_first():
    # given a gate slow enough that everyone queues (2 sends a second), with one send just made
    gate = SendGate(2.0)
    gate.set_rate("org", 2.0)
    gate.turn("org", "first")
    left: list[str] = []

    def originate(name: str) -> None:
        gate.turn("org", name)
        left.append(name)

    def transfer() -> None:
        gate.transfer_turn()
        left.append("transfer")

    # when three originates queue up, and then a transfer's bridge
    waiting = [gevent.spawn(originate, name) for name in ("a", "b", "c")]
    gevent.sleep(0)
    waiting.append(gevent.spawn(transfer))
    gevent.joinall(waiting, timeout=10)
    # then the transfer leaves first (the originates were still waiting for their
    # organization's pace), and the originates keep their order
    assert left == ["transfer", "a", "b", "c"]


def test_a_closed_gate_refuses_waiting_originates_but_lets_transfers_pass():
    gate = SendGate(1.0)
    gate.set_rate("org", 1.0)
    gate.turn("org", "sent")
    outcome: list[str] = []

    def originate() -> None:
        try:
            gate.turn("org", "waiting")
            outcome.append("sent")
        except DispatchStopped:
            outcome.append("stopped")

    greenlet = gevent.spawn(originate)
    gevent.sleep(0)
    # when the gate closes (shutdown) while an originate waits for its turn
    gate.close()
    greenlet.join(timeout=5)
    # then it is not sent, and a live call's transfer still may be (after its turn)
    assert outcome == ["stopped"]
    with pytest.raises(DispatchStopped):
        gate.turn("org", "later")
    gevent.with_timeout(5, gate.transfer_turn)


def test_claims_are_bounded_by_what_the_gate_sends_in_a_moment():
    gate = SendGate(400.0)
    gate.set_rate("slow", 80.0)
    gate.set_rate("fast", 100_000.0)
    switch_ahead = round(400 * CLAIM_AHEAD_SECONDS)
    # an organization's own pace bounds it, and the switch's bounds all of them together
    assert gate.room("slow") == round(80 * CLAIM_AHEAD_SECONDS)
    assert gate.room("fast") == switch_ahead
    for n in range(switch_ahead - 2):
        gate.expect("fast", f"call-{n}")
    assert gate.room("fast") == 2
    assert gate.room("slow") == 2
    # a call that ends unsent frees its place; an unknown organization gets none
    gate.forget("fast", "call-0")
    assert gate.unsent("fast") == switch_ahead - 3
    assert gate.room("nobody") == 0


def test_calls_sent_while_a_claim_runs_leave_room_for_it():
    # given 9 calls claimed and unsent at 90/s (a tenth of a second ahead: no room)
    gate = SendGate(180.0)
    gate.set_rate("org", 90.0)
    for n in range(9):
        gate.expect("org", f"call-{n}")
    assert gate.room("org") == 0
    # when a claim takes 50 ms, 4 of them leave meanwhile: it may take 4, and at its commit no
    # more than a tenth of a second's calls are claimed and unsent
    assert gate.room("org", claim_seconds=0.05) == 4
    # a claim of 200 ms must bring 200 ms of sends (18) or the claims would set the rate; the
    # 9 waiting have left by its commit
    assert gate.room("org", claim_seconds=0.2) == 18
    # however slow the store, a claim takes at most half a second of pace
    assert gate.room("org", claim_seconds=3.0) == 45
    # with no room, the next look is once half of what such claims take ahead has left:
    # 36 unsent, claims of 200 ms (18 ahead) -> 27 sends at 90/s
    for n in range(9, 36):
        gate.expect("org", f"call-{n}")
    assert gate.room("org", claim_seconds=0.2) == 0
    assert gate.seconds_until_room("org", claim_seconds=0.2) == pytest.approx(27 / 90)


def test_a_lost_lease_stops_every_originate_at_its_turn():
    gate = SendGate(100.0)
    gate.set_rate("org", 100.0)
    gate.may_send = lambda: False
    with pytest.raises(DispatchStopped):
        gate.turn("org", "call")


def test_nothing_is_claimed_while_the_switch_is_paused():
    # given a new process (the switch still counts its predecessor's last second)
    gate = SendGate(40.0)
    gate.set_rate("org", 40.0)
    gate.start_cold()
    # then no call is claimed until it could leave, and the dispatcher is told when to look
    assert gate.room("org") == 0
    assert 0 < gate.seconds_until_room("org") <= 1.0


def test_each_originate_sent_is_told_with_its_switch_and_nothing_else_is():
    # the switch's health times each channel's creation from this moment
    gate = SendGate(100.0, switches=("a", "b"))
    gate.set_rate("org", 100.0)
    sent: list[tuple[str, str | None]] = []
    gate.on_sent = lambda channel_uuid, switch: sent.append((channel_uuid, switch))
    gate.turn("org", "one", "b")
    gate.turn("org", "two")
    gate.transfer_turn("a")  # a transfer's bridge: no originate of robocall's
    gate.may_dial = lambda organization_id, channel_uuid: False
    with pytest.raises(DispatchStopped):
        gate.turn("org", "not sent")
    assert sent == [("one", "b"), ("two", None)]

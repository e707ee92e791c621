"""The seed's promise: robocall dials as many calls as the organization has free lines, its
lines shared with calls its people make from other apps — never more, and none left idle."""

from __future__ import annotations

import secrets

import gevent

from robocall.testing import Callee, FakeSwitch
from tests.support.service import wait_for

LINES = 6
# Each robo call is transferred to extension 1000, which stays on the line this long (scripted).
TALK_MS = 8000


class LineSampler:
    """Counts the organization's channels on the switch itself, independently of robocall."""

    def __init__(self, fake: FakeSwitch, org_id: str) -> None:
        self.fake = fake
        self.org_id = org_id
        # The most lines in use seen right after robocall added a call. (Other apps may
        # oversubscribe the lines on their own; what robocall must never do is add to that.)
        self.max_total_at_robo_dial = 0
        # (robo, other) lines up when each robo call appeared, in the order they appeared.
        self.dials: list[tuple[int, int]] = []
        self.samples = 0
        self._robo_seen: set[str] = set()
        self._greenlet = gevent.spawn(self._run)

    def _lines(self) -> tuple[set[str], int]:
        robo: set[str] = set()
        other = 0
        for channel in self.fake.channels():
            if channel.variables.get("accountcode") != self.org_id or not channel.up:
                continue
            if "robocall_call_id" in channel.variables:
                robo.add(channel.uuid)
            else:
                other += 1
        return robo, other

    def counts(self) -> tuple[int, int]:
        """(robo, other) channels of the organization that are up now."""
        robo, other = self._lines()
        return len(robo), other

    def _run(self) -> None:
        while True:
            robo, other = self._lines()
            new = robo - self._robo_seen
            if new:
                self.max_total_at_robo_dial = max(self.max_total_at_robo_dial, len(robo) + other)
                self.dials.extend([(len(robo), other)] * len(new))
                self._robo_seen |= robo
            self.samples += 1
            gevent.sleep(0.002)

    def stop(self) -> None:
        self._greenlet.kill()


def test_the_seed_scenario_t1_four_robo_calls_t2_one(start_service):
    # given an organization with 6 lines, 2 of them busy with calls from another app
    running = start_service({"1000": Callee(answer_after_ms=100, hangup_after_ms=TALK_MS)},
                            lines=LINES, cps=100.0)
    fake = running.fake
    external = [fake.start_external_call({"accountcode": running.org_id}) for _ in range(2)]
    sampler = LineSampler(fake, running.org_id)
    body = {
        "requestId": f"lines-{secrets.token_hex(3)}",
        "destinations": [
            {"phone": f"+65800000{i:02d}", "caller": "+6582674904"} for i in range(12)
        ],
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }
    # when 12 calls are queued
    assert running.post_call(body).status_code == 200
    # then at t1: 4 robo calls are triggered (6 lines - 2 busy), and no more
    # (waited for as the sampler recorded them: the other apps' calls below must not start
    # before the sampler, slowed by a loaded machine, has seen the fourth robo call appear)
    wait_for(lambda: len(sampler.dials) >= 4 and sampler.counts() == (4, 2),
             "4 robo calls beside 2 external ones")
    # when 3 more people start calls from other apps (5 lines busy elsewhere)
    external += [fake.start_external_call({"accountcode": running.org_id}) for _ in range(3)]
    # then at t2 no robo call is added until all four have ended, and from then on one robo
    # call at a time runs: each next one is dialled only once the one before has ended
    wait_for(lambda: len(sampler.dials) >= 6, "two more robo calls")
    assert sampler.dials[3:6] == [(4, 2), (1, 5), (1, 5)]
    # when the other apps hang up, every line is used again
    for channel_uuid in external:
        fake.end_external_call(channel_uuid)
    final = running.wait_until_final(body["requestId"])
    sampler.stop()
    assert final["counts"] == {"completed": 12}
    # and the organization's 6 lines were never exceeded, as the switch itself saw them
    assert sampler.samples > 100
    assert sampler.max_total_at_robo_dial <= LINES
    report = running.service.dispatcher.report(running.org_id)
    assert report is not None and report.free == LINES and report.in_flight == 0


def test_a_freed_line_is_reused_by_the_next_queued_call(start_service):
    # given one line and three queued calls
    running = start_service({"1000": Callee(answer_after_ms=100, hangup_after_ms=1000)},
                            lines=1, cps=100.0)
    sampler = LineSampler(running.fake, running.org_id)
    body = {
        "requestId": f"reuse-{secrets.token_hex(3)}",
        "destinations": [{"phone": f"+6580000{i:03d}", "caller": "+6582674904"} for i in range(3)],
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    sampler.stop()
    # then all three ran, one after the other, on the one line
    assert final["counts"] == {"completed": 3}
    assert sampler.max_total_at_robo_dial == 1

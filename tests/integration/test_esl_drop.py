"""The Event Socket connection lost mid-dialing: dispatch pauses, robocall reconnects, lines and
live calls are re-synced; nothing queued is lost and nothing is dialled twice."""

from __future__ import annotations

import secrets

import pytest

from robocall.testing import Callee
from tests.support.nodes import originates_by_number
from tests.support.service import wait_for

pytestmark = pytest.mark.usefixtures("repo")

CALLS = 30
FINAL = {"completed", "failed"}


def test_connections_dropped_mid_dialing_lose_nothing_and_dial_nothing_twice(start_service):
    # given 4 lines and 30 queued calls: most answer and are transferred, some are busy, some
    # ring a while and are not answered
    callees = {"1000": Callee(answer_after_ms=100, hangup_after_ms=1500)}
    phones = [f"+6580002{i:03d}" for i in range(CALLS)]
    for index, phone in enumerate(phones):
        if index % 7 == 3:
            callees[phone] = Callee(outcome="busy", ring=False)
        elif index % 7 == 5:
            callees[phone] = Callee(outcome="no_answer")
    running = start_service(callees, lines=4, cps=100.0, originate_timeout_seconds=2)
    fake = running.fake
    body = {
        "requestId": f"drop-{secrets.token_hex(3)}",
        "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }
    assert running.post_call(body).status_code == 200

    # when the switch drops robocall's connection three times while calls are being dialled
    # (every call alive then has its events cut)
    dialled_before_drop = []
    for after in (4, 12, 20):
        wait_for(lambda after=after: sum(originates_by_number(fake.received).values()) >= after,
                  f"{after} originates")
        dialled_before_drop.append(sum(originates_by_number(fake.received).values()))
        fake.drop_connections()
        # then robocall reconnects by itself
        wait_for(lambda: running.service.switch.connected, "the reconnect")

    # then every call ends final: none is lost in the queue or left dialing
    final = running.wait_until_final(body["requestId"])
    assert set(final["counts"]) <= FINAL
    assert sum(final["counts"].values()) == CALLS
    assert all(detail["status"] in FINAL for detail in final["details"])
    # and the switch received at most one originate per number
    originated = originates_by_number(fake.received)
    assert max(originated.values()) == 1
    # and a number it never received was caught by a drop with its originate unconfirmed:
    # robocall cannot prove it was not dialled, so it is failed with that cause, not redialled
    details = running.calls_by_destination(final)
    for phone in set(phones) - set(originated):
        assert details[phone]["status"] == "failed"
        assert details[phone]["hangupCause"] == "SWITCH_CONNECTION_LOST"
    # (at most the 4 lines' dials in flight at each of the 3 drops)
    assert len(set(phones) - set(originated)) <= 3 * 4
    # and dialling went on after the last drop
    assert sum(originated.get(p, 0) for p in phones) > dialled_before_drop[-1]
    # and the line book agrees with the switch at the end: no line leaked
    report = running.service.dispatcher.report(running.org_id)
    assert report is not None and report.in_flight == 0

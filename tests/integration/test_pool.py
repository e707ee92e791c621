"""One robocall over a pool of three FakeSwitches: new calls spread over the switches, an
organization's lines are counted on all of them, and a switch that goes away mid-run costs
no promise (docs/pool.md)."""

from __future__ import annotations

import secrets
from typing import Any

from robocall.testing import Callee, FakeSwitch
from tests.support.metrics import value, wait_for_metrics
from tests.support.nodes import originates_by_number
from tests.support.pool import PoolSampler
from tests.support.service import RunningService, wait_for

SWITCHES = 3
# Each robo call is transferred to extension 1000, which holds the line this long (scripted).
TALK_MS = 3000


def transfer_request(prefix: str, calls: int) -> dict[str, Any]:
    return {
        "requestId": f"{prefix}-{secrets.token_hex(3)}",
        "destinations": [
            {"phone": f"+6581{i:06d}", "caller": "+6582674904"} for i in range(calls)
        ],
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }


def start_pool(start_service: Any, lines: int, talk_ms: int = TALK_MS) -> RunningService:
    return start_service(
        {"1000": Callee(answer_after_ms=50, hangup_after_ms=talk_ms)},
        lines=lines, cps=200.0, switches=SWITCHES,
    )


def originates(fakes: list[FakeSwitch]) -> dict[str, int]:
    """Every number's originates, as the switches themselves received them."""
    counts: dict[str, int] = {}
    for fake in fakes:
        for number, count in originates_by_number(fake.received).items():
            counts[number] = counts.get(number, 0) + count
    return counts


def test_new_calls_spread_over_the_switches_and_the_status_names_each_ones(start_service):
    # given robocall over three switches and an organization with 30 lines
    running = start_pool(start_service, lines=30)
    sampler = PoolSampler(running.fakes, {running.org_id: 30})
    # when 30 calls are queued at once
    body = transfer_request("spread", 30)
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    sampler.stop()
    # then every call completed, none dialled twice
    assert final["counts"] == {"completed": 30}
    assert set(originates(running.fakes).values()) == {1}
    # and every switch took about a third of them (least loaded first: 10 each, give or take
    # a call that ended before the next was placed)
    per_switch = [len(originates_by_number(fake.received)) for fake in running.fakes]
    assert sum(per_switch) == 30
    assert min(per_switch) >= 7, per_switch
    # and each call's status names its switch, and its legs too (where to uuid_dump them)
    names = {f"sw{index}": fake for index, fake in enumerate(running.fakes)}
    for detail in final["details"]:
        fake = names[detail["switch"]]
        call_leg = next(leg for leg in detail["monitorData"] if leg["type"] == "call")
        assert call_leg["switch"] == detail["switch"]
        assert any(call_leg["uuid"] in raw for raw in fake.received)
    # and the lines were never exceeded
    assert sampler.orgs[running.org_id].max_total_at_robo_dial <= 30


def test_other_apps_calls_on_one_switch_reduce_the_robo_calls_on_the_others(start_service):
    # given an organization with 6 lines, 4 of them busy with another app's calls on sw1
    running = start_pool(start_service, lines=6)
    switch_b = running.fakes[1]
    external = [switch_b.start_external_call({"accountcode": running.org_id}) for _ in range(4)]
    sampler = PoolSampler(running.fakes, {running.org_id: 6})
    # when 8 calls are queued
    body = transfer_request("shared", 8)
    assert running.post_call(body).status_code == 200
    # then only 2 robo calls run at a time while the other app holds 4 lines
    wait_for(lambda: sampler.counts(running.org_id) == (2, 4), "2 robo calls beside 4 others")
    wait_for(lambda: len(sampler.orgs[running.org_id].dials) >= 4, "two more robo calls")
    # and once the other app hangs up, the robo calls take its lines
    for channel_uuid in external:
        switch_b.end_external_call(channel_uuid)
    final = running.wait_until_final(body["requestId"])
    sampler.sample()
    sampler.stop()
    seen = sampler.orgs[running.org_id]
    assert final["counts"] == {"completed": 8}
    assert all(robo <= 2 for robo, other in seen.dials if other == 4)
    assert seen.max_total_at_robo_dial <= 6
    assert seen.violations == 0
    # and the other switches carried robo calls the lines of sw1 held back
    others = sum(len(originates_by_number(fake.received)) for fake in running.fakes[::2])
    assert others > 0


def test_a_switch_killed_mid_run_costs_no_promise(start_service):
    # given robocall over three switches and an organization with 9 lines
    running = start_pool(start_service, lines=9)
    # a switch back from a restart waits this long for new calls (its SIP side coming up)
    running.service.dispatcher.restart_warmup_seconds = 0.5
    live = list(running.fakes)
    all_fakes = list(running.fakes)
    sampler = PoolSampler(live, {running.org_id: 9})
    body = transfer_request("killed", 60)
    # when 60 calls are queued and, once sw1 carries some, sw1 is killed
    assert running.post_call(body).status_code == 200
    victim = running.fakes[1]
    wait_for(lambda: sum(1 for c in victim.channels() if c.up) >= 2, "calls on sw1")
    port = victim.port
    live.remove(victim)
    victim.stop()
    dialled_at_kill = [len(originates_by_number(fake.received)) for fake in all_fakes]
    # then /metrics names the switch that is gone, beside the two that are not
    wait_for_metrics(
        running,
        lambda s: [value(s, "robocall_switch_connected", switch=name)
                   for name in ("sw0", "sw1", "sw2")] == [1, 0, 1],
        "sw1 disconnected, sw0 and sw2 connected",
    )
    # then dialling goes on on the other two switches
    wait_for(lambda: sum(len(originates_by_number(f.received)) for f in live)
             > dialled_at_kill[0] + dialled_at_kill[2] + 3, "dials on the other switches")
    assert len(originates_by_number(victim.received)) == dialled_at_kill[1]
    # when sw1 comes back (empty: its calls went with it) on the same port
    revived = FakeSwitch(callees=victim.callees, time_scale=victim.switch.time_scale,
                         port=port).start()
    all_fakes.append(revived)
    live.append(revived)
    try:
        # then it takes new calls again
        wait_for(lambda: len(originates_by_number(revived.received)) > 0, "dials on sw1 again")
        wait_for_metrics(running, lambda s: value(s, "robocall_switch_connected", switch="sw1")
                         == 1, "sw1 connected again")
        final = running.wait_until_final(body["requestId"])
    finally:
        sampler.sample()
        sampler.stop()
        revived.stop()
    # and every call is final, none dialled twice, the lines never exceeded
    counts = final["counts"]
    assert sum(counts.values()) == 60
    assert set(counts) <= {"completed", "failed"}
    dialled = originates(all_fakes)
    assert set(dialled.values()) == {1}
    # (an originate cut off with sw1's connection may never have reached it: robocall cannot
    # prove it did not, so it is failed, never sent again)
    for detail in final["details"]:
        if detail["destination"] not in dialled:
            assert (detail["switch"], detail["status"]) == ("sw1", "failed"), detail
    seen = sampler.orgs[running.org_id]
    assert seen.violations == 0 and seen.max_total_at_robo_dial <= 9
    # and the calls cut off with sw1 are failed with the cause that says so
    failed = [d for d in final["details"] if d["status"] == "failed"]
    assert failed and all(d["switch"] == "sw1" for d in failed)
    assert {d["hangupCause"] for d in failed} == {"SWITCH_CONNECTION_LOST"}


def test_a_pool_of_one_names_no_switch(start_service):
    # given robocall over one switch (as before pools)
    running = start_service({"1000": Callee(answer_after_ms=50, hangup_after_ms=100)})
    body = transfer_request("one", 2)
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])
    # then its status has no switch field at all: a B3 client sees the contract's shape
    assert final["counts"] == {"completed": 2}
    for detail in final["details"]:
        assert "switch" not in detail
        assert all("switch" not in leg for leg in detail["monitorData"])


def test_unknown_switch_lines_are_held_while_it_cannot_be_seen(start_service):
    # given an organization with 4 lines, 3 of them busy with other apps' calls on sw2
    running = start_pool(start_service, lines=4, talk_ms=500)
    switch_c = running.fakes[2]
    for _ in range(3):
        switch_c.start_external_call({"accountcode": running.org_id})
    wait_for(lambda: running.service.dispatcher.lines.usage(running.org_id).other == 3,
             "robocall counts the other app's calls")
    # when robocall loses sight of sw2 (its Event Socket refuses robocall for a while)
    switch_c.accepting = False
    switch_c.drop_connections()
    wait_for(lambda: not running.service.pool.member("sw2").client.connected, "sw2 unreachable")
    sampler = PoolSampler(running.fakes, {running.org_id: 4})
    body = transfer_request("unseen", 4)
    assert running.post_call(body).status_code == 200
    # then the lines sw2 held when last seen stay held: one robo call at a time, on sw0/sw1
    wait_for(lambda: len(sampler.orgs[running.org_id].dials) >= 2, "two robo calls")
    report = running.service.dispatcher.report(running.org_id)
    assert report is not None and report.other == 3
    assert all(robo <= 1 for robo, _ in sampler.orgs[running.org_id].dials)
    switch_c.accepting = True
    final = running.wait_until_final(body["requestId"])
    sampler.stop()
    assert final["counts"] == {"completed": 4}
    assert sampler.orgs[running.org_id].violations == 0

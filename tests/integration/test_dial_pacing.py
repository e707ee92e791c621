"""Pacing that never trips the switch: FakeSwitch refuses sessions above its sessions-per-second
exactly as FreeSWITCH does ("Throttle Error", -ERR DESTINATION_OUT_OF_ORDER), so a burst of
calls at start and after a kill -9 must show 0 refused; and a dial the switch does refuse goes
back to the queue, dialled once later, not failed and not counted as an attempt."""

from __future__ import annotations

import secrets
from pathlib import Path

import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER
from robocall.testing import Callee, CalleeBook, FakeSwitch
from tests.support.node_fixtures import NodeDatabase
from tests.support.node_fixtures import node_database as node_database  # noqa: F401
from tests.support.nodes import ServeProcess, originates_by_number
from tests.support.service import wait_for

# Real time (time scale 1): the switch's one-second window is a real second.
SWITCH_SPS = 60


def _play_request(count: int, prefix: str) -> dict[str, object]:
    return {
        "requestId": f"burst-{secrets.token_hex(3)}",
        "destinations": [{"phone": f"{prefix}{i:04d}", "caller": "+6582674904"}
                         for i in range(count)],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Your parcel has arrived."}}]},
    }


def test_a_burst_at_start_never_exceeds_the_switch_budget(start_service):
    # given a switch allowing 60 sessions per second, and an organization whose own lines and
    # pace would allow more (30 lines of calls lasting ~0.3 s: ~100 calls a second)
    running = start_service(
        {}, lines=30, cps=1000.0, default=Callee(answer_after_ms=50, hangup_after_ms=200),
        switch_options={"time_scale": 1.0, "sessions_per_second": SWITCH_SPS},
    )
    body = _play_request(240, "+658100")
    running.warm_prompts(body)
    # when 240 calls are submitted at once
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(str(body["requestId"]))
    # then the switch refused none, never took more than its budget in any second, and every
    # call completed
    switch = running.fake.switch
    assert switch.throttled == 0
    assert switch.most_sessions_in_a_second() <= SWITCH_SPS
    assert final["counts"] == {"completed": 240}
    # and the pace robocall keeps was read from the switch itself
    assert running.service.dispatcher.switch_limits.sessions_per_second == SWITCH_SPS


def test_a_dial_the_switch_refuses_is_queued_again_and_dialled_once(start_service):
    # given robocall paced by a switch's budget of 60/s, which then drops to 5/s behind its back
    running = start_service(
        {}, lines=40, cps=1000.0, default=Callee(answer_after_ms=50, hangup_after_ms=200),
        switch_options={"time_scale": 1.0, "sessions_per_second": SWITCH_SPS},
    )
    wait_for(lambda: running.service.dispatching.is_set(), "dispatching")
    running.fake.switch.sessions_per_second = 5
    body = _play_request(30, "+658200")
    running.warm_prompts(body)
    # when 30 calls are submitted at once
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(str(body["requestId"]))
    # then the switch did refuse some, yet every call completed, each reached its callee once
    # (one session each) and none counted a refusal as an attempt
    switch = running.fake.switch
    assert switch.throttled > 0
    assert final["counts"] == {"completed": 30}
    assert switch.session_count == 30
    page = running.repo.request_status(running.org_id, str(body["requestId"]), limit=30)
    assert {call.attempt for call in page.calls} == {1}
    # and robocall read the switch's new budget after the refusals
    assert running.service.dispatcher.switch_limits.sessions_per_second == 5


def test_a_burst_after_a_kill_9_never_exceeds_the_switch_budget(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    repo, database_url = node_database.repo, node_database.url
    # given a node (a `robocall serve` process) dialling 200 calls as fast as a switch of
    # 60 sessions per second allows
    phones = [f"+658300{i:04d}" for i in range(200)]
    fake = FakeSwitch(
        CalleeBook({}, Callee(answer_after_ms=50, hangup_after_ms=200)),
        sessions_per_second=SWITCH_SPS,
    ).start()
    org = bootstrap.create_organization(repo, "burst", lines=30, cps=1000.0)
    key = bootstrap.create_api_key(repo, org.id)

    def serve() -> ServeProcess:
        return ServeProcess(database_url=database_url, switch_url=fake.url,
                            node_id="burst-node",
                            data_dir=tmp_path / "node").start()

    node = serve()
    try:
        body = {
            "requestId": "burst",
            "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
            "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello."}}]},
        }
        response = requests.post(f"{node.base_url}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=30)
        assert response.status_code == 200, response.text
        # when it is killed with SIGKILL mid-burst and started again at once
        wait_for(lambda: sum(originates_by_number(fake.received).values()) >= 60, "60 dials")
        node.kill()
        node = serve()
        try:
            wait_for(
                lambda: set(repo.request_status(org.id, "burst", limit=1).counts)
                <= {"completed", "failed"},
                "every call final",
            )
        except AssertionError:
            page = repo.request_status(org.id, "burst", limit=200)
            stuck = [c.id for c in page.calls if c.status.value == "dialing"]
            print("STUCK", stuck, [c.phone for c in page.calls if c.id in stuck])
            print("\n".join(line for line in node.log
                            if any(f"call {i}" in line for i in stuck) or "recover" in line))
            raise
    finally:
        node.stop()
        fake.stop()
    # then the switch refused none, in either life, and no one was dialled twice
    assert fake.switch.throttled == 0
    assert fake.switch.most_sessions_in_a_second() <= SWITCH_SPS
    assert max(originates_by_number(fake.received).values()) == 1

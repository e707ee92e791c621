"""Never twice, never lost, across a crash: a robocall node killed with SIGKILL mid-call is
restarted on the same database and switch; the calls it left are settled, none is dialled
again, and the queue goes on."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER
from robocall.api.server import make_server
from robocall.config import Settings
from robocall.dispatch.recovery import RESTARTED_CAUSE
from robocall.testing import Callee, CalleeBook, FakeSwitch
from robocall.tts.cache import TtsCache
from tests.support.api_server import TEST_LANGUAGES
from tests.support.node_fixtures import NodeDatabase
from tests.support.node_fixtures import node_database as node_database  # noqa: F401
from tests.support.nodes import ServeProcess, originates_by_number
from tests.support.service import SETTLE_SECONDS, TIME_SCALE, wait_for

LINES = 3


def _answered_robo_calls(fake: FakeSwitch) -> list[str]:
    return [
        c.uuid for c in fake.channels()
        if "robocall_call_id" in c.variables and c.kind == "robo" and c.up
        and c.answer_state == "answered"
    ]


def test_a_killed_node_restarts_settles_its_calls_and_dials_none_twice(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    repo, database_url = node_database.repo, node_database.url
    # given a node (a `robocall serve` process) with 3 lines, six queued calls, each answered
    # and transferred to an extension that talks for a while
    fake = FakeSwitch(
        CalleeBook({"1000": Callee(answer_after_ms=100, hangup_after_ms=2000)},
                   Callee(answer_after_ms=100)),
        time_scale=TIME_SCALE,
    ).start()
    node_id = f"node-{secrets.token_hex(3)}"
    org = bootstrap.create_organization(repo, "crash", lines=LINES, cps=100.0)
    key = bootstrap.create_api_key(repo, org.id)
    serve = ServeProcess(database_url=database_url, switch_url=fake.url, node_id=node_id,
                         data_dir=tmp_path / "node").start()
    service = None
    try:
        request_id = f"crash-{secrets.token_hex(3)}"
        phones = [f"+6580001{i:03d}" for i in range(6)]
        body = {
            "requestId": request_id,
            "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
        }
        response = requests.post(f"{serve.base_url}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=30)
        assert response.status_code == 200, response.text
        wait_for(lambda: len(_answered_robo_calls(fake)) == LINES, "3 answered robo calls")

        # when the node is killed with SIGKILL while its 3 calls are live
        serve.kill()
        live_at_crash = set(_answered_robo_calls(fake))
        assert len(live_at_crash) == LINES
        # and (as if it died between a claim's commit and its originate) one more call is
        # claimed for that node but never sent
        never_sent = repo.claim_calls(org.id, [str(uuid.uuid4())], node_id=node_id)
        assert len(never_sent) == 1

        # and the node comes back (in this process) on the same database and switch
        settings = Settings(data_dir=tmp_path / "again").with_overrides(
            switch=fake.url, node_id=node_id)
        service = bootstrap.build_service(settings, languages=TEST_LANGUAGES, repo=repo,
                                          tts=TtsCache(tmp_path / "tts"))
        service.start()
        assert service.dispatching.wait(SETTLE_SECONDS)

        # then the live calls were hung up and the unsent one settled, before any new dial
        recovery = service.recovery
        assert recovery is not None
        assert len(recovery.hung_up) == LINES
        assert recovery.without_channel == (never_sent[0].ticket.call_id,)
        assert not live_at_crash & {c.uuid for c in fake.channels() if c.up}
        # and the rest of the queue is dialled and completes
        wait_for(lambda: repo.request_status(org.id, request_id, limit=10).counts
                  == {"completed": 2, "failed": 4}, "every call final")
        page = repo.request_status(org.id, request_id, limit=10)
        recovered = set(recovery.hung_up) | set(recovery.without_channel)
        for call in page.calls:
            if call.id in recovered:
                assert call.hangup_cause == RESTARTED_CAUSE
                # an answer is kept if the node recorded it before it died
                assert call.answered_at is None or call.id in recovery.hung_up
        # and no number was dialled twice; the unsent call was never dialled at all
        originated = originates_by_number(fake.received)
        assert max(originated.values()) == 1
        assert never_sent[0].ticket.phone not in originated
        assert sum(originated.get(p, 0) for p in phones) == 5
    finally:
        serve.kill()
        if service is not None:
            service.stop(grace_seconds=2)
        fake.stop()


def test_a_node_recovers_only_the_calls_it_claimed(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    # given one database shared by two nodes, each of which claimed a call and then died
    # before its originate left
    repo = node_database.repo
    org = bootstrap.create_organization(repo, "shared", lines=4)
    key = bootstrap.create_api_key(repo, org.id)
    fake = FakeSwitch(time_scale=TIME_SCALE).start()
    service = None
    try:
        settings = Settings(data_dir=tmp_path / "mine").with_overrides(
            switch=fake.url, node_id="node-mine", database_url=node_database.url)
        mine_first = bootstrap.build_service(settings, languages=TEST_LANGUAGES, repo=repo,
                                             tts=TtsCache(tmp_path / "tts"))
        server = make_server(mine_first.api.app, "127.0.0.1:0")
        server.start()
        host, port = server.address[:2]
        body = {
            "requestId": "shared",
            "destinations": [{"phone": f"+658100{i:04d}", "caller": "+6582674904"}
                             for i in range(2)],
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
        }
        response = requests.post(f"http://{host}:{port}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=30)
        server.stop(timeout=2)
        assert response.status_code == 200, response.text
        [theirs] = repo.claim_calls(org.id, [str(uuid.uuid4())], node_id="node-theirs")
        [mine] = repo.claim_calls(org.id, [str(uuid.uuid4())], node_id="node-mine")

        # when this node starts again
        service = mine_first
        service.start()
        assert service.dispatching.wait(SETTLE_SECONDS)

        # then it settled its own call and left the other node's alone
        assert service.recovery is not None
        assert service.recovery.without_channel == (mine.ticket.call_id,)
        assert service.recovery.hung_up == ()
        statuses = {c.id: c.status.value for c in repo.request_status(
            org.id, "shared", limit=10).calls}
        assert statuses == {mine.ticket.call_id: "failed", theirs.ticket.call_id: "dialing"}
        assert originates_by_number(fake.received) == {}
    finally:
        if service is not None:
            service.stop(grace_seconds=1)
        fake.stop()

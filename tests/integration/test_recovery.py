"""Never twice, never lost, across a crash: a robocall node killed with SIGKILL mid-call is
restarted on the same database and switch; the calls it left are settled, none is dialled
again, and the queue goes on."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest
import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER
from robocall.config import Settings
from robocall.dispatch.recovery import RESTARTED_CAUSE
from robocall.store.repo import Repo
from robocall.testing import Callee, CalleeBook, FakeSwitch
from robocall.tts.cache import TtsCache
from tests.support.api_server import TEST_LANGUAGES
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
    repo: Repo, database_url: str, tmp_path: Path
) -> None:
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


@pytest.mark.usefixtures("repo")
def test_a_fresh_start_recovers_nothing(start_service) -> None:
    # given a node that starts on a database without unfinished calls of its own
    running = start_service()
    # when it starts dispatching, then recovery found nothing to settle
    assert running.service.dispatching.wait(SETTLE_SECONDS)
    assert running.service.recovery is not None
    assert running.service.recovery.total == 0

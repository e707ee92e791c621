"""Shutdown settles its books, and no call is ever left unfinished: after SIGTERM's grace the
calls still live are hung up and recorded final (ROBOCALL_SHUTDOWN), the queued ones stay queued,
a restart finds nothing to recover; a dial template the command builder would refuse stops
``serve`` at start; an exception on a call's path ends the call failed instead of `dialing`."""

from __future__ import annotations

import secrets
from pathlib import Path

import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER
from robocall.calls.dialplan import DialPlan
from robocall.calls.following import ENDED_INTERNAL_ERROR
from robocall.calls.runner import SHUTDOWN_CAUSE
from robocall.config import Settings
from robocall.testing import Callee, CalleeBook, FakeSwitch
from robocall.tts.cache import TtsCache
from tests.support.api_server import TEST_LANGUAGES
from tests.support.node_fixtures import NodeDatabase
from tests.support.node_fixtures import node_database as node_database  # noqa: F401
from tests.support.nodes import ServeProcess, error_lines, originates_by_number, serve_to_exit
from tests.support.service import SETTLE_SECONDS, TIME_SCALE, wait_for

LINES = 3


def _answered_robo_calls(fake: FakeSwitch) -> list[str]:
    return [c.uuid for c in fake.channels()
            if c.kind == "robo" and c.up and c.answer_state == "answered"]


def test_sigterm_leaves_no_call_unfinished_and_a_restart_finds_nothing_to_recover(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    repo = node_database.repo
    # given a node with 3 lines and 6 calls, each answered and transferred to a long talk
    fake = FakeSwitch(
        CalleeBook({"1000": Callee(answer_after_ms=100, hangup_after_ms=600_000)},
                   Callee(answer_after_ms=100)),
        time_scale=TIME_SCALE,
    ).start()
    org = bootstrap.create_organization(repo, "shutdown", lines=LINES, cps=100.0)
    key = bootstrap.create_api_key(repo, org.id)
    serve = ServeProcess(database_url=node_database.url, switch_url=fake.url,
                         node_id="stopping-node", data_dir=tmp_path / "node",
                         env={"ROBOCALL_SHUTDOWN_GRACE": "1"}).start()
    service = None
    try:
        phones = [f"+6580002{i:03d}" for i in range(6)]
        body = {
            "requestId": "shutdown",
            "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
        }
        response = requests.post(f"{serve.base_url}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=30)
        assert response.status_code == 200, response.text
        wait_for(lambda: len(_answered_robo_calls(fake)) == LINES, "3 answered robo calls")

        # when it gets SIGTERM while its 3 calls talk on past the grace
        serve.stop()

        # then the live calls were hung up and recorded final with the shutdown's cause, the
        # queued ones were never dialled and wait for the next start, and nothing is left live
        assert serve.process is not None and serve.process.returncode == 0, serve.tail()
        page = repo.request_status(org.id, "shutdown", limit=10)
        assert page.counts == {"failed": LINES, "queued": 3}
        ended = [call for call in page.calls if call.status.value == "failed"]
        assert {call.hangup_cause for call in ended} == {SHUTDOWN_CAUSE}
        assert all(call.answered_at is not None for call in ended)
        assert not [c for c in fake.channels() if c.up and c.kind == "robo"]
        assert len(originates_by_number(fake.received)) == LINES
        # and the observers were told (the call log is one of them)
        for call in ended:
            assert any(f"call {call.id}: failed ({SHUTDOWN_CAUSE})" in line
                       for line in serve.log), serve.tail()
        assert repo.lease_of("stopping-node") is None

        # and when it starts again, there is nothing to recover, and the queue goes on
        settings = Settings(data_dir=tmp_path / "again").with_overrides(
            switch=fake.url, node_id="stopping-node", database_url=node_database.url)
        service = bootstrap.build_service(settings, languages=TEST_LANGUAGES, repo=repo,
                                          tts=TtsCache(tmp_path / "tts"))
        service.start()
        assert service.dispatching.wait(SETTLE_SECONDS)
        assert service.recovery is not None and service.recovery.total == 0
        wait_for(lambda: len(_answered_robo_calls(fake)) == LINES, "the 3 queued calls live")
    finally:
        serve.kill()
        if service is not None:
            service.stop(grace_seconds=0)
        fake.stop()


def test_a_dial_template_the_command_builder_refuses_stops_serve_at_start(
    tmp_path: Path
) -> None:
    # given a dial template that looks like a template but holds a space
    env = {"ROBOCALL_DIAL_TEMPLATE": "sofia/gateway/{gateway}/{number} &park"}
    # when serve starts with it
    done = serve_to_exit(f"sqlite:///{tmp_path / 'r.db'}", "fake", "template-node",
                         tmp_path / "data", env=env)
    # then it exits 2 with one line naming the setting
    assert done.returncode == 2, done.stderr
    [error] = error_lines(done.stderr)
    assert "ROBOCALL_DIAL_TEMPLATE" in error and "' '" in error
    assert "Traceback" not in done.stderr


def test_an_exception_before_the_originate_ends_the_call_failed(start_service) -> None:
    # given a runner whose dial plan produces what the originate's builder refuses (as a
    # template a version of robocall accepted used to: a space in the dial string)
    running = start_service({})
    refused = DialPlan()
    object.__setattr__(refused, "number_template", "sofia/gateway/{gateway}/{number} x")
    running.service.dispatcher.runner.dial_plan = refused
    request_id = f"stuck-{secrets.token_hex(3)}"
    body = {
        "requestId": request_id,
        "destinations": [{"phone": "+6581000009", "caller": "+6582674904"}],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello."}}]},
    }
    # when its call is dialled
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(request_id)
    # then the call is final, failed with a cause that says robocall failed it; nothing left
    [detail] = final["details"]
    assert detail["status"] == "failed"
    assert detail["hangupCause"] == ENDED_INTERNAL_ERROR
    assert originates_by_number(running.fake.received) == {}

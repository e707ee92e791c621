"""A node is one process, provably: a node id's lease is held in the database; a second
``robocall serve`` on a live lease refuses to start naming the holder; a crashed node's calls are
recovered once its lease expired (or its process is known dead), and their observers are told."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER
from robocall.api.server import make_server
from robocall.config import Settings
from robocall.dispatch.recovery import RESTARTED_CAUSE
from robocall.errors import NodeBusy
from robocall.store.records import CallTicket
from robocall.testing import FakeSwitch
from robocall.tts.cache import TtsCache
from tests.support.api_server import TEST_LANGUAGES
from tests.support.node_fixtures import NodeDatabase
from tests.support.node_fixtures import node_database as node_database  # noqa: F401
from tests.support.nodes import ServeProcess, error_lines, serve_to_exit
from tests.support.service import SETTLE_SECONDS, TIME_SCALE


def test_a_second_serve_on_a_live_node_refuses_to_start_naming_the_holder(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    # given a node running as a process
    fake = FakeSwitch(time_scale=TIME_SCALE).start()
    first = ServeProcess(database_url=node_database.url, switch_url=fake.url,
                         node_id="lease-node", data_dir=tmp_path / "first").start()
    try:
        assert first.process is not None
        # when a second process starts with the same node id on the same database
        second = serve_to_exit(node_database.url, fake.url, "lease-node", tmp_path / "second")
        # then it exits 2 with one line naming the holder's pid, and dials nothing
        assert second.returncode == 2, second.stderr
        [error] = error_lines(second.stderr)
        assert "lease-node" in error and f"pid {first.process.pid}" in error
        assert "Traceback" not in second.stderr
        # and the first one still holds the node
        lease = node_database.repo.lease_of("lease-node")
        assert lease is not None and lease.pid == first.process.pid
        assert first.running
    finally:
        first.stop()
        fake.stop()
    # and once it stopped cleanly, the node id is free
    assert node_database.repo.lease_of("lease-node") is None


def test_two_processes_never_dial_from_one_sqlite_file(tmp_path: Path) -> None:
    # given a node dialling from a SQLite file
    url = f"sqlite:///{tmp_path / 'one.db'}"
    fake = FakeSwitch(time_scale=TIME_SCALE).start()
    first = ServeProcess(database_url=url, switch_url=fake.url, node_id="sqlite-a",
                         data_dir=tmp_path / "a").start()
    try:
        # when another process starts on the same file, even with another node id
        second = serve_to_exit(url, fake.url, "sqlite-b", tmp_path / "b")
        # then it is refused in one line that names the node dialling from the file
        assert second.returncode == 2, second.stderr
        [error] = error_lines(second.stderr)
        assert "sqlite-a" in error and "PostgreSQL" in error
    finally:
        first.stop()
        fake.stop()


class _Ended:
    """An observer that records every call_ended it is told."""

    def __init__(self) -> None:
        self.ended: list[tuple[int, str, str]] = []

    def call_ended(self, ticket: CallTicket, status: str, hangup_cause: str,
                   duration_seconds: float | None) -> None:
        self.ended.append((ticket.call_id, status, hangup_cause))

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None  # the other moments are of no interest here


def _service_with_a_claimed_call(
    node_database: NodeDatabase, tmp_path: Path, fake: FakeSwitch
) -> tuple[bootstrap.Service, int, str]:
    """A node's service (not started) over a request of one call that a previous process of the
    same node claimed and never finished: (service, call id, organization id)."""
    repo = node_database.repo
    org = bootstrap.create_organization(repo, "lease", lines=2)
    key = bootstrap.create_api_key(repo, org.id)
    settings = Settings(data_dir=tmp_path / "node").with_overrides(
        switch=fake.url, node_id="node-x", database_url=node_database.url)
    service = bootstrap.build_service(settings, languages=TEST_LANGUAGES, repo=repo,
                                      tts=TtsCache(tmp_path / "tts"))
    server = make_server(service.api.app, "127.0.0.1:0")
    server.start()
    host, port = server.address[:2]
    body = {
        "requestId": "lease",
        "destinations": [{"phone": "+6581000001", "caller": "+6582674904"}],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello."}}]},
    }
    response = requests.post(f"http://{host}:{port}/v1/call", json=body,
                             headers={API_KEY_HEADER: key}, timeout=30)
    server.stop(timeout=2)
    assert response.status_code == 200, response.text
    [claimed] = repo.claim_calls(org.id, [str(uuid.uuid4())], node_id="node-x")
    return service, claimed.ticket.call_id, org.id


def _lease_held_elsewhere(node_database: NodeDatabase, heartbeat_age_seconds: float) -> None:
    """node-x's lease as a process on another host left it, its last heartbeat that old."""
    then = datetime.now(UTC) - timedelta(seconds=heartbeat_age_seconds)
    other = bootstrap.open_repo(Settings(database_url=node_database.url), clock=lambda: then,
                                run_migrations=False)
    try:
        other.take_lease("node-x", host="elsewhere.example", pid=4242, token="theirs",
                         expiry_seconds=30, holder_gone=lambda holder: False)
    finally:
        other.close()


def _statuses(node_database: NodeDatabase, org_id: str) -> Mapping[int, str]:
    page = node_database.repo.request_status(org_id, "lease", limit=10)
    return {call.id: call.status.value for call in page.calls}


def test_a_node_held_elsewhere_is_not_recovered_while_its_lease_is_live(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    fake = FakeSwitch(time_scale=TIME_SCALE).start()
    try:
        # given node-x's call left dialing, and its lease renewed 2 s ago on another host
        service, call_id, org_id = _service_with_a_claimed_call(node_database, tmp_path, fake)
        _lease_held_elsewhere(node_database, heartbeat_age_seconds=2)
        # when a process here starts as node-x
        with pytest.raises(NodeBusy, match="elsewhere.example"):
            service.start()
        # then it refuses, and the other process's call is left alone
        assert _statuses(node_database, org_id) == {call_id: "dialing"}
    finally:
        fake.stop()


def test_a_node_whose_lease_expired_is_recovered_and_its_observers_told(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    fake = FakeSwitch(time_scale=TIME_SCALE).start()
    service = None
    try:
        # given node-x's call left dialing, and its lease last renewed a minute ago elsewhere
        service, call_id, org_id = _service_with_a_claimed_call(node_database, tmp_path, fake)
        _lease_held_elsewhere(node_database, heartbeat_age_seconds=60)
        ended = _Ended()
        service.dispatcher.runner.observers.add(ended)
        # when a process here starts as node-x
        service.start()
        assert service.dispatching.wait(SETTLE_SECONDS)
        # then it took the lease over, settled the call, and told the observers
        lease = node_database.repo.lease_of("node-x")
        assert lease is not None and lease.pid == os.getpid()
        assert _statuses(node_database, org_id) == {call_id: "failed"}
        assert ended.ended == [(call_id, "failed", RESTARTED_CAUSE)]
    finally:
        if service is not None:
            service.stop(grace_seconds=1)
        fake.stop()

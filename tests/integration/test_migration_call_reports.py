"""Migration 5 on SQLite and PostgreSQL: a database written by robocall before it (steps and
legs kept as the client's JSON) reads back through the contract exactly as it did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from robocall import bootstrap
from robocall.api import contract
from robocall.flow.model import CallFlow, CallRequest, Destination, Message, Play
from robocall.store.db import open_database
from robocall.store.migrations import MIGRATIONS, current_version, migrate
from robocall.store.repo import Repo
from tests.support.api_server import fresh_database

# What the call runner wrote before migration 5: callFlowSteps and monitorData entries.
OLD_STEPS = [
    {"stepName": "play", "info": {"call_state": "ongoing", "call_status": "answered",
                                  "status": "success_ok", "userPressedDigits": "",
                                  "transfer_status": ""}},
    {"stepName": "gather", "info": {"call_state": "ongoing", "call_status": "answered",
                                    "status": "success_ok", "userPressedDigits": "0",
                                    "transfer_status": ""}},
    {"stepName": "transfer", "info": {"call_state": "ended", "call_status": "answered",
                                      "status": "error_transfer_failed",
                                      "userPressedDigits": "", "transfer_status": "busy"}},
]
OLD_MONITOR = [
    {"uuid": "6f1c0c3e-call", "type": "call", "dest": "+84900000000"},
    {"uuid": "6f1c0c3e-transfer", "type": "transfer", "dest": "1000"},
]


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at schema version 4 holding a finished call, as robocall wrote it then."""
    with fresh_database(request.param, tmp_path) as url:
        database = open_database(url)
        assert migrate(database, up_to=4) == [1, 2, 3, 4]
        repo = Repo(database)
        org = bootstrap.create_organization(repo, "before", lines=2)
        request_ = CallRequest(
            request_id="old-1",
            destinations=(
                Destination("+84900000000", "+6582674904", {}),
                Destination("+84900000001", "+6582674904", {}),
            ),
            call_flow=CallFlow(steps=(Play(Message("hello")),)),
        )
        repo.submit_request(org.id, request_, call_flow_json="{}", body_hash="h")
        with database.connection_context():
            database.execute_sql(
                "UPDATE calls SET status = 'completed', "
                f"steps = {database.param}, monitor = {database.param} WHERE position = 0",
                (json.dumps(OLD_STEPS), json.dumps(OLD_MONITOR)),
            )
        repo.close()
        yield url


def test_migration_5_keeps_every_step_and_leg_as_the_status_showed_them(old_database: str):
    # given a database written before migration 5
    database = open_database(old_database)
    # when it is migrated
    applied = migrate(database)
    # then migration 5 ran (and every later one), and the status reads as before, with the
    # contract's spelling
    newest = MIGRATIONS[-1][0]
    assert applied == list(range(5, newest + 1)) and current_version(database) == newest
    repo = Repo(database)
    with database.connection_context():
        (org,) = database.execute_sql("SELECT org_id FROM call_requests").fetchone()
    body = contract.status_body(repo.request_status(org, "old-1", limit=10))
    answered, queued = body["details"]
    expected_steps = json.loads(json.dumps(OLD_STEPS).replace("success_ok", "sucess_ok"))
    assert answered["callFlowSteps"] == expected_steps
    assert answered["monitorData"] == OLD_MONITOR
    assert queued["callFlowSteps"] == [] and queued["monitorData"] == []
    # and migrating again changes nothing
    assert migrate(database) == []
    again = contract.status_body(repo.request_status(org, "old-1", limit=10))
    assert again == body
    repo.close()

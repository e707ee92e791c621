"""The command line as a new user runs it (README): org, key, serve, submit, status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from robocall.cli import EXIT_NOT_FOUND
from tests.support.requests_data import seed_example

REPO_ROOT = Path(__file__).resolve().parents[2]


def robocall(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robocall", *args, "--database", database],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[str]:
    """``robocall serve`` on a free port of 127.0.0.1 over FakeSwitch; its base URL.

    Every callee is busy, so calls end at once and the server stops without waiting on any.
    """
    callees = tmp_path / "callees.json"
    callees.write_text(json.dumps({"default": {"outcome": "busy", "ring": False}}))
    server = subprocess.Popen(
        [sys.executable, "-m", "robocall", "serve", "--listen", "127.0.0.1:0",
         "--database", database_url, "--data-dir", str(tmp_path / "data"),
         "--switch", "fake", "--callees", str(callees)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        base_url = None
        assert server.stderr is not None
        for line in server.stderr:  # the startup line names the port it got
            found = re.search(r"robocall API on (http://127\.0\.0\.1:\d+)", line)
            if found:
                base_url = found.group(1)
                break
        assert base_url, "serve did not say where it listens"
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_new_user_creates_an_org_and_key_submits_the_seed_and_reads_its_status(
    database_url: str, served: str, tmp_path: Path
):
    # given an organization and a key made with the command line
    created = robocall("org", "create", "Acme", "--lines", "6", "--cps", "5",
                       database=database_url)
    assert created.returncode == 0, created.stderr
    org_id = created.stdout.strip()
    assert re.fullmatch(r"org_[0-9a-f]{12}", org_id)
    issued = robocall("key", "create", org_id, database=database_url)
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    # when the seed's example is submitted to the served API with the command line
    body = seed_example()
    body["requestId"] = f"cli-{org_id}"
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    client = ["--url", served, "--key", key]
    submitted = subprocess.run(
        [sys.executable, "-m", "robocall", "submit", str(request_file), *client],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    status = subprocess.run(
        [sys.executable, "-m", "robocall", "status", body["requestId"], *client],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    # then submit watched both (busy) calls to the end, and status reads the same
    assert submitted.returncode == 0, submitted.stderr
    assert f"cli-{org_id} completed: 2 calls (failed 2)" in submitted.stdout
    assert status.returncode == 0, status.stderr
    for phone in ("+84917660247", "+84912860330"):
        assert any(phone in line and "USER_BUSY" in line for line in status.stdout.splitlines())
    assert f"cli-{org_id} completed: 2 calls (failed 2)" in status.stdout


def test_migrate_reports_a_current_schema(database_url: str):
    migrated = robocall("migrate", database=database_url)
    assert migrated.returncode == 0
    assert migrated.stdout.strip() in ("schema is current", "applied migrations: 1")


def test_a_key_for_an_unknown_organization_fails_with_a_message(database_url: str):
    failed = robocall("key", "create", "org_nobody", database=database_url)
    assert failed.returncode == EXIT_NOT_FOUND
    assert "no organization org_nobody" in failed.stderr
    assert failed.stdout == ""


def test_bad_configuration_exits_2_with_a_message(database_url: str):
    bad_lines = robocall("org", "create", "Acme", "--lines", "0", database=database_url)
    bad_url = robocall("migrate", database="mysql://localhost/x")
    assert bad_lines.returncode == bad_url.returncode == 2
    assert "--lines must be at least 1" in bad_lines.stderr
    assert "must start with sqlite:// or postgresql://" in bad_url.stderr

"""The command line as a new user runs it (README): org, key, serve, post, status."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from robocall.api.auth import API_KEY_HEADER
from robocall.cli import EXIT_NOT_FOUND
from tests.support.requests_data import seed_example

REPO_ROOT = Path(__file__).resolve().parents[2]


def robocall(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robocall", *args, "--database", database],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def served(database_url: str) -> Iterator[str]:
    """``robocall serve`` on a free port of 127.0.0.1; its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "robocall", "serve", "--listen", "127.0.0.1:0",
         "--database", database_url],
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


def test_a_new_user_creates_an_org_and_key_posts_the_seed_and_reads_its_status(
    database_url: str, served: str
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
    # when the seed's example is posted to the served API and its status read
    headers = {API_KEY_HEADER: key}
    body = seed_example()
    body["requestId"] = f"cli-{org_id}"
    posted = requests.post(f"{served}/v1/call", json=body, headers=headers, timeout=30)
    status = requests.get(f"{served}/v1/status/{body['requestId']}", headers=headers, timeout=30)
    # then both answer the stored request
    assert posted.status_code == 200, posted.text
    assert status.status_code == 200
    assert status.json()["counts"] == {"queued": 2}


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

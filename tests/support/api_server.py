"""Fixtures for storage and API tests: the same suite on SQLite and on PostgreSQL.

Test modules import the fixtures they use from here (``from tests.support.api_server import
...``). PostgreSQL is the server at ``ROBOCALL_TEST_PG`` (default ``127.0.0.1:5432``, user
postgres, trust auth); each test session creates a uniquely named database and drops it at
the end. The API runs for real: gevent's WSGI server on 127.0.0.1, port 0, spoken to over HTTP.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER, OPERATOR_KEY_HEADER
from robocall.api.server import make_server
from robocall.config import Settings
from robocall.flow.parse import parse_call_request
from robocall.store.db import open_database
from robocall.store.migrations import migrate
from robocall.store.repo import Repo
from tests.support.openapi_check import check_response
from tests.support.resolver import LocalResolver

TEST_LANGUAGES = frozenset({"en", "vi"})
PG_ADDRESS = os.environ.get("ROBOCALL_TEST_PG", "127.0.0.1:5432")


def _admin_connection() -> Any:
    host, _, port = PG_ADDRESS.partition(":")
    connection = psycopg2.connect(host=host, port=int(port or 5432), user="postgres",
                                  dbname="postgres", connect_timeout=5)
    connection.autocommit = True
    return connection


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database on ``backend`` (sqlite or postgresql), dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'robocall-{secrets.token_hex(4)}.db'}"
        return
    with scratch_postgresql_database("robocall_test") as url:
        yield url


@contextmanager
def scratch_postgresql_database(prefix: str) -> Iterator[str]:
    """A new empty PostgreSQL database, dropped (even with clients still on it) afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _admin_connection()
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_ADDRESS}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def backend_of(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[str]:
    """A fresh, empty database for this session, on each backend in turn."""
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def repo(database_url: str) -> Iterator[Repo]:
    """The repository over the session's database, migrated."""
    database = open_database(database_url)
    migrate(database)
    store = Repo(database)
    yield store
    store.close()


def queue_transfer_calls(repo: Repo, org_id: str, count: int, *, phone_prefix: str = "+658400",
                         call_flow_json: str = "{}") -> None:
    """Store a request of ``count`` calls to ``phone_prefix`` + 4 digits (in that order)."""
    body = {
        "requestId": f"queued-{secrets.token_hex(3)}",
        "destinations": [{"phone": f"{phone_prefix}{i:04d}", "caller": "+6582674904"}
                         for i in range(count)],
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }
    request = parse_call_request(body, languages=TEST_LANGUAGES, max_destinations=100)
    repo.submit_request(org_id, request, call_flow_json=call_flow_json,
                        body_hash=secrets.token_hex(8))


@dataclass
class RunningApi:
    """A live API server and a client that speaks to it."""

    base_url: str
    repo: Repo

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def new_key(self, lines: int = 4) -> tuple[str, str]:
        """A new organization and a key for it: ``(org_id, key)``."""
        org = bootstrap.create_organization(self.repo, f"org {secrets.token_hex(3)}", lines=lines)
        return org.id, bootstrap.create_api_key(self.repo, org.id)

    def new_operator_key(self) -> str:
        """A new operator key (as ``robocall operator key create`` makes one)."""
        return bootstrap.issue_operator_key(self.repo, f"ops {secrets.token_hex(3)}").key

    def set_lines(self, operator_key: str, org_id: str, body: Any) -> requests.Response:
        """The operator's ``PUT /v1/organizations/{org_id}/lines``."""
        return requests.put(self.url(f"/v1/organizations/{org_id}/lines"), json=body,
                            headers={OPERATOR_KEY_HEADER: operator_key}, timeout=60)

    def post_call(self, key: str, body: Any, **kwargs: Any) -> requests.Response:
        """POST /v1/call; the answer is checked against the served OpenAPI document."""
        return check_response(self.base_url, requests.post(
            self.url("/v1/call"), json=body, headers={API_KEY_HEADER: key}, timeout=60, **kwargs
        ))

    def status(self, key: str, request_id: str, **params: Any) -> requests.Response:
        """GET /v1/status; the answer is checked against the served OpenAPI document."""
        return check_response(self.base_url, requests.get(
            self.url(f"/v1/status/{request_id}"), params=params, headers={API_KEY_HEADER: key},
            timeout=60,
        ))

    def get(self, path: str, key: str | None = None, **params: Any) -> requests.Response:
        """GET any path (with ``key``, if given); the answer is checked against the document."""
        headers = {API_KEY_HEADER: key} if key else {}
        return check_response(self.base_url, requests.get(
            self.url(path), params=params, headers=headers, timeout=60
        ))


@pytest.fixture
def start_api(repo: Repo) -> Iterator[Callable[..., RunningApi]]:
    """Start the real API (optionally with settings overrides); stopped after the test."""
    servers = []

    def start(
        *,
        monotonic: Callable[[], float] | None = None,
        resolver: LocalResolver | None = None,
        **overrides: Any,
    ) -> RunningApi:
        settings = Settings().with_overrides(**overrides)
        extra: dict[str, Any] = {"monotonic": monotonic} if monotonic is not None else {}
        # webhook hosts resolve from a table in the test, never over the network
        extra["resolver"] = resolver if resolver is not None else LocalResolver()
        api = bootstrap.build_api(settings, languages=TEST_LANGUAGES, repo=repo, **extra)
        server = make_server(api.app, "127.0.0.1:0")
        server.start()
        servers.append(server)
        host, port = server.address[:2]
        return RunningApi(base_url=f"http://{host}:{port}", repo=repo)

    yield start
    for server in servers:
        server.stop(timeout=2)


@pytest.fixture
def api(start_api: Callable[..., RunningApi]) -> RunningApi:
    """The API with default settings."""
    return start_api()

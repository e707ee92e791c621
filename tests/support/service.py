"""The whole of robocall running for a test: FakeSwitch with scripted callees, the dialer and
the API over HTTP, on the session's database (SQLite or PostgreSQL in turn)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER, OPERATOR_KEY_HEADER
from robocall.api.server import make_server
from robocall.config import Settings
from robocall.demo import render_ahead
from robocall.store.repo import Repo
from robocall.testing import Callee, CalleeBook, FakeSwitch
from robocall.tts.cache import TtsCache
from tests.support.api_server import TEST_LANGUAGES, backend_of, fresh_database
from tests.support.openapi_check import check_response
from tests.support.resolver import LocalResolver

# Scripted durations run this much faster than real time (a 5 s gather timeout takes 0.5 s).
TIME_SCALE = 0.1
# A bound on waiting for calls to end, so a broken build fails instead of hanging; never a
# measure of speed.
SETTLE_SECONDS = 60.0


def wait_for(predicate: Any, what: str, poll_seconds: float = 0.01) -> Any:
    """Wait until ``predicate()`` is true and return what it returned; fail after
    SETTLE_SECONDS (a bound, not a measure)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(poll_seconds)
    return value


@dataclass
class RunningService:
    """A live robocall over FakeSwitch, and a client that speaks to it over HTTP."""

    base_url: str
    service: bootstrap.Service
    fake: FakeSwitch
    org_id: str
    key: str
    # Every FakeSwitch of a pool, in order (the first is ``fake``); named sw0, sw1, ...
    fakes: list[FakeSwitch] = field(default_factory=list)

    @property
    def repo(self) -> Repo:
        return self.service.api.repo

    def post_call(self, body: Any) -> requests.Response:
        """POST /v1/call; the answer is checked against the served OpenAPI document."""
        return check_response(self.base_url, requests.post(
            f"{self.base_url}/v1/call", json=body, headers={API_KEY_HEADER: self.key}, timeout=60
        ))

    def status(self, request_id: str, **params: Any) -> dict[str, Any]:
        response = check_response(self.base_url, requests.get(
            f"{self.base_url}/v1/status/{request_id}",
            params=params,
            headers={API_KEY_HEADER: self.key},
            timeout=60,
        ))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def new_organization(self, lines: int = 6) -> tuple[str, str]:
        """Another organization on the same service: ``(org_id, key)``."""
        org = bootstrap.create_organization(self.repo, "another", lines=lines)
        self.service.dispatcher.refresh_organizations()
        return org.id, bootstrap.create_api_key(self.repo, org.id)

    def set_lines(self, change: dict[str, Any], org_id: str | None = None) -> requests.Response:
        """The operator's ``PUT /v1/organizations/{org_id}/lines`` (this organization's by
        default), with an operator key made for it."""
        operator_key = bootstrap.issue_operator_key(self.repo, "test operator").key
        return requests.put(
            f"{self.base_url}/v1/organizations/{org_id or self.org_id}/lines",
            json=change,
            headers={OPERATOR_KEY_HEADER: operator_key},
            timeout=60,
        )

    def get(self, path: str, key: str | None = None) -> requests.Response:
        """GET ``path``; a documented route's answer is checked against the served document."""
        return check_response(self.base_url, requests.get(
            f"{self.base_url}{path}", headers={API_KEY_HEADER: key or self.key}, timeout=60
        ))

    def wait_until_final(self, request_id: str, limit: int = 1000) -> dict[str, Any]:
        """Poll the status until the request is completed; its final status (``limit`` calls).

        Fails when its calls make no progress for SETTLE_SECONDS: a bound on a stall, not on the
        whole run, which for a large request on a busy machine may take longer."""
        deadline = time.monotonic() + SETTLE_SECONDS
        seen: dict[str, int] | None = None
        while True:
            status = self.status(request_id, limit=1)
            if status["status"] in ("completed", "cancelled"):
                return self.status(request_id, limit=limit)
            if status["counts"] != seen:
                seen, deadline = status["counts"], time.monotonic() + SETTLE_SECONDS
            elif time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} stalled: {status['counts']}")
            # 4 polls a second stay well under the key's rate limit (600 a minute by default)
            # however long the wait, a retry backoff included.
            gevent.sleep(0.25)

    def warm_prompts(self, body: dict[str, Any]) -> None:
        """Render every message of ``body`` for each destination before it is posted: a callee
        scripted to hang up a moment after answering must still hear the first message begin."""
        render_ahead(self.service.tts, body, TEST_LANGUAGES)

    def calls_by_destination(self, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {detail["destination"]: detail for detail in status["details"]}


def step_rows(detail: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """A call's ``callFlowSteps`` as rows: (stepName, status, call_state, digits, transfer)."""
    return [
        (
            step["stepName"],
            step["info"]["status"],
            step["info"]["call_state"],
            step["info"]["userPressedDigits"],
            step["info"]["transfer_status"],
        )
        for step in detail["callFlowSteps"]
    ]


class ServiceStarter:
    """Starts robocall services over FakeSwitches for one test (or module); stops them all.

    Each service gets a database of its own on the session's backend: a dispatcher dials every
    organization's queued calls, and the session database holds other tests' requests.
    """

    def __init__(
        self,
        backend: str,
        directory: Path,
        *,
        store_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.backend = backend
        self.directory = directory
        self.store_clock = store_clock  # the store's "now" (retry backoffs, calling windows)
        self.running: list[tuple[Any, bootstrap.Service, list[FakeSwitch]]] = []
        self._databases = ExitStack()

    def __call__(
        self,
        callees: dict[str, Callee] | None = None,
        *,
        lines: int = 6,
        cps: float = 50.0,
        default: Callee | None = None,
        callee_book: CalleeBook | None = None,
        tts: TtsCache | None = None,
        clock: Callable[[], float] = time.time,
        time_scale: float = TIME_SCALE,
        switch_options: dict[str, Any] | None = None,
        resolver: LocalResolver | None = None,
        switches: int = 1,
        **overrides: Any,
    ) -> RunningService:
        """Start robocall over a FakeSwitch scripted with ``callees``, with a new organization
        of ``lines`` lines (and a key for it); ``callee_book`` replaces ``callees`` and
        ``default`` whole (``CalleeBook.people()``: the world of ``robocall serve``); ``tts``
        replaces the shared test cache, ``clock`` robocall's wall clock, ``time_scale`` the
        fake's, ``switch_options`` FakeSwitch's other options (limits), ``resolver`` the lookup
        of webhook hosts (a local table by default: no test resolves a name over the network).
        ``switches`` > 1 starts that many FakeSwitches as one pool, named sw0, sw1, ..."""
        book = callee_book or CalleeBook(
            dict(callees or {}), default or Callee(answer_after_ms=200)
        )
        options = {"time_scale": time_scale, **(switch_options or {})}
        fakes = [FakeSwitch(callees=book, **options).start() for _ in range(switches)]
        fake = fakes[0]
        # A service restarted "on the same database" passes database_url; else a fresh one.
        database_url = overrides.pop("database_url", None) or self._databases.enter_context(
            fresh_database(self.backend, self.directory)
        )
        settings = Settings(data_dir=self.directory / f"data-{secrets.token_hex(3)}")
        switch = fake.url if switches == 1 else ",".join(
            f"{each.url}#sw{index}" for index, each in enumerate(fakes))
        settings = settings.with_overrides(switch=switch, database_url=database_url, **overrides)
        store = (
            bootstrap.open_repo(settings, clock=self.store_clock) if self.store_clock else None
        )
        service = bootstrap.build_service(
            settings,
            languages=TEST_LANGUAGES,
            repo=store,
            tts=tts if tts is not None else TtsCache(self.directory / "tts"),
            clock=clock,
            resolver=resolver if resolver is not None else LocalResolver(),
        )
        repo = service.api.repo
        server = make_server(service.api.app, "127.0.0.1:0")
        server.start()
        self.running.append((server, service, fakes))
        service.start()
        for member in service.pool:
            member.client.wait_connected(10)
        org = bootstrap.create_organization(repo, "e2e", lines=lines, cps=cps)
        service.dispatcher.refresh_organizations()
        key = bootstrap.create_api_key(repo, org.id)
        host, port = server.address[:2]
        return RunningService(f"http://{host}:{port}", service, fake, org.id, key, fakes)

    def stop_all(self) -> None:
        for server, service, fakes in self.running:
            server.stop(timeout=2)
            service.stop(grace_seconds=2)
            for fake in fakes:
                fake.stop()
        self.running.clear()
        self._databases.close()


@pytest.fixture
def start_service(database_url: str, tmp_path: Path) -> Iterator[ServiceStarter]:
    """Start robocall services for this test, on the session's database backend; all stopped
    after it."""
    starter = ServiceStarter(backend_of(database_url), tmp_path)
    yield starter
    starter.stop_all()

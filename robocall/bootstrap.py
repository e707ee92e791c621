"""The composition root: Settings -> database -> repository -> Falcon app.

Everything else receives its dependencies from here (clocks and id generators included), so
tests build the same objects with their own. The switch connection and the dispatcher
(``robocall.esl``, ``robocall.dispatch``) are wired here when they exist; until then
``robocall serve`` stores requests and answers status, and nothing dials.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon

from robocall.api.app import create_app
from robocall.api.auth import RateLimiter
from robocall.config import Settings
from robocall.store.db import open_database
from robocall.store.migrations import migrate
from robocall.store.records import Organization
from robocall.store.repo import Repo, utc_now

DEFAULT_CPS = 5.0


def new_org_id() -> str:
    """A fresh organization id; also its default line value (accountcode), so ESL-safe."""
    return f"org_{secrets.token_hex(6)}"


def new_api_key() -> str:
    """A fresh API key: 256 random bits, URL-safe."""
    return f"rk_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Api:
    """The running parts of the API: its store and its WSGI app."""

    repo: Repo
    app: falcon.App[Any, Any]


def open_repo(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, run_migrations: bool = True
) -> Repo:
    """The repository over the configured database, migrated to the current schema."""
    database = open_database(settings.resolved_database_url)
    if run_migrations:
        migrate(database)
    return Repo(database, clock=clock)


def build_api(
    settings: Settings,
    *,
    languages: Iterable[str],
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    repo: Repo | None = None,
) -> Api:
    """The API over ``settings``' database (or ``repo``), checking ``lang`` against ``languages``.

    The caller passes the languages (``robocall.tts.voices.available_languages()`` in
    production) so tests need not depend on which TTS engines a machine has.
    """
    repo = repo if repo is not None else open_repo(settings, clock=clock)
    app = create_app(
        repo=repo,
        languages=frozenset(languages),
        max_destinations=settings.max_destinations,
        max_body_bytes=settings.max_body_bytes,
        limiter=RateLimiter(settings.rate_limit_per_minute, clock=monotonic),
    )
    return Api(repo=repo, app=app)


def create_organization(
    repo: Repo,
    name: str,
    *,
    lines: int,
    cps: float = DEFAULT_CPS,
    new_id: Callable[[], str] = new_org_id,
) -> Organization:
    """Store a new organization with ``lines`` concurrent calls and ``cps`` new calls/second."""
    return repo.create_organization(new_id(), name, max_concurrent_calls=lines, cps=cps)


def create_api_key(repo: Repo, org_id: str, *, new_key: Callable[[], str] = new_api_key) -> str:
    """A new key for ``org_id``; only its SHA-256 is stored, so this is the one time it is seen."""
    key = new_key()
    repo.add_api_key(org_id, key)
    return key

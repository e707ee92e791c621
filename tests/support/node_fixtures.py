"""Fixture for tests that start robocall nodes as child processes: a database of their own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from robocall import bootstrap
from robocall.config import Settings
from robocall.store.repo import Repo
from tests.support.nodes import fresh_database


@dataclass(frozen=True)
class NodeDatabase:
    """A fresh, migrated database (of the session's kind) and its repository."""

    url: str
    repo: Repo


@pytest.fixture
def node_database(database_url: str, tmp_path: Path) -> Iterator[NodeDatabase]:
    """A database no other test has left queued calls in (nodes dispatch every organization)."""
    with fresh_database(database_url, tmp_path) as url:
        repo = bootstrap.open_repo(Settings(database_url=url))
        try:
            yield NodeDatabase(url, repo)
        finally:
            repo.close()

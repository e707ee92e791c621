"""A wall clock a test sets and advances: the store's notion of now, so retry backoffs and
calling windows never depend on when the test runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.api_server import backend_of
from tests.support.service import ServiceStarter


class SettableClock:
    """Now is whatever the test said last."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    """As the API writes moments: UTC with a Z."""
    return moment.isoformat().replace("+00:00", "Z")


# A Monday morning: 08:30 in London, 16:30 in Singapore.
START = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> SettableClock:
    """The test's clock, at ``START``."""
    return SettableClock(START)


@pytest.fixture
def start_clocked_service(database_url: str, clock: SettableClock, tmp_path: Path
                          ) -> Iterator[ServiceStarter]:
    """Like ``start_service``, with a store that reads the time from ``clock``."""
    starter = ServiceStarter(backend_of(database_url), tmp_path, store_clock=clock)
    yield starter
    starter.stop_all()

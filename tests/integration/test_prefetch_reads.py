"""The first-message prefetcher reads the queue head from the store only when it is worth it.

Once an organization's queue is drained, every line its calls free wakes the dispatcher, and
each pass asked the prefetcher for ready calls: each of those asks read the empty queue again
(on FakeSwitch, 170 of a run's 243 reads found nothing), a store round trip apiece on the cores
the switch needs. A queue found empty is read again once calls are stored (or go back to the
queue), or after ``IDLE_LOOK_SECONDS`` (a retry falling due, another node's request).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import gevent
import pytest

from robocall import bootstrap
from robocall.calls.prefetch import IDLE_LOOK_SECONDS, FirstPrompts
from robocall.calls.programs import ProgramCache
from robocall.flow.model import Message
from robocall.store.records import QueuedCall
from robocall.store.repo import Repo
from tests.support.api_server import queue_transfer_calls

pytestmark = pytest.mark.usefixtures("repo")


class CountedReads:
    """The real store, its queue-head reads counted."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.reads: dict[str, list[int]] = {}  # per organization: rows each read returned

    def upcoming_calls(self, organization_id: str, limit: int) -> list[QueuedCall]:
        calls = self.repo.upcoming_calls(organization_id, limit)
        self.reads.setdefault(organization_id, []).append(len(calls))
        return calls


class NoPrompts:
    """A transfer-only flow has no message to render."""

    def audio_path(self, message: Message, properties: Any) -> Path:
        raise AssertionError(f"nothing to render, asked for {message}")


def _settle() -> None:
    gevent.sleep(0.05)  # the look-ahead greenlet reads and returns


def test_a_drained_queue_is_read_again_only_when_calls_come_or_a_while_passed(repo: Repo) -> None:
    # given an organization with nothing queued, and a prefetcher on a clock the test moves
    org_id = bootstrap.create_organization(repo, f"org {secrets.token_hex(3)}", lines=10).id
    store = CountedReads(repo)
    now = [1000.0]
    prompts = FirstPrompts(store, NoPrompts(), ProgramCache(["en"]), clock=lambda: now[0])
    assert prompts.ready(org_id, 5) == 0
    _settle()
    assert store.reads[org_id] == [0]
    # when the dispatcher asks again and again (each freed line of a drained queue)
    for _ in range(20):
        assert prompts.ready(org_id, 5) == 0
        _settle()
    # then the empty queue is not read again
    assert store.reads[org_id] == [0]
    # when a request's calls are stored, the next ask reads them, and they are ready
    queue_transfer_calls(repo, org_id, 3)
    prompts.calls_stored(org_id)
    prompts.ready(org_id, 5)
    _settle()
    assert store.reads[org_id][:2] == [0, 3]
    assert prompts.ready(org_id, 5) == 3
    # and calls stored without a word (another node's, a retry falling due) are found once
    # IDLE_LOOK_SECONDS have passed since the queue was last found empty
    other = bootstrap.create_organization(repo, f"org {secrets.token_hex(3)}", lines=10).id
    prompts.ready(other, 5)
    _settle()
    queue_transfer_calls(repo, other, 2)
    prompts.ready(other, 5)
    _settle()
    assert store.reads[other] == [0]
    now[0] += IDLE_LOOK_SECONDS
    prompts.ready(other, 5)
    _settle()
    assert store.reads[other] == [0, 2]
    assert prompts.ready(other, 5) == 2
    prompts.stop()

"""First messages rendered ahead of the queue head, so a call takes a line only once it can speak.

A call's first message must be on disk before it is dialled: a callee may answer at once, and
dead air after "hello?" makes people hang up. When every destination hears its own name, that
is a render per call; done after the claim, the call sits ``dialing`` holding one of the
organization's lines (and its dial budget) while an engine runs. So the prefetcher renders the
first message of each organization's next ``window`` queued calls, in the order a claim takes
them, and the dispatcher claims only as many calls as lead the queue with their audio ready
(:meth:`FirstPrompts.ready`). Renders go through the TTS cache, so the call's runner later
finds the same file there, and the cache's render slots bound how many engines run at once.

Bounded: per organization at most ``window`` call ids are held, and ``window`` first messages
sit rendered on disk (in the cache, pruned as any other file) ahead of their claim. A render
that fails marks its call ready all the same: the call is dialled and its step reports the
failure (error_playback), as it would have without the prefetcher.

Runs in greenlets of its own; the dispatcher only reads counters here and is woken (``on_ready``)
when a call it waited for has its audio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import gevent
import gevent.event
import gevent.pool

from robocall.errors import RobocallError
from robocall.flow.compile import Program
from robocall.flow.model import Message
from robocall.store.records import QueuedCall

log = logging.getLogger(__name__)

# Calls looked ahead per organization. Enough to keep a fast dial rate fed through a burst (the
# dispatcher takes at most a second's dials at once), small enough that a cancelled request
# leaves little rendered for nothing.
DEFAULT_WINDOW = 100
# First messages of one organization in the works at once: more than the TTS cache's render
# slots, so a slot freed by one render is taken by the next at once (shared pieces are hits).
DEFAULT_WORKERS = 4
# With nothing to do, the queue is looked at again after this long (new calls also nudge it).
IDLE_LOOK_SECONDS = 1.0
# A waiting dispatcher is woken once this many calls lead the queue ready (or all it asked
# for, or all there is): each claim is a durable commit, and one per rendered call cut the dial
# rate of a personalised request to the commit rate of a busy disk.
CLAIM_BATCH = 10


class UpcomingCalls(Protocol):
    """The store's read of the queue head (``robocall.store.repo.Repo`` implements it)."""

    def upcoming_calls(self, organization_id: str, limit: int) -> list[QueuedCall]: ...


class Programs(Protocol):
    """Compiled call flows by request (``robocall.calls.programs.ProgramCache``)."""

    def program(self, request_seq: int, call_flow_json: str) -> Program: ...


class PromptFiles(Protocol):
    """Renders a message for a destination (``robocall.calls.prompts.Prompts``)."""

    def audio_path(self, message: Message, properties: Mapping[str, str]) -> Path: ...


@dataclass
class _Queue:
    """What the prefetcher knows of one organization's queue head."""

    head: list[int] = field(default_factory=list)  # call ids, in claim order
    ready: set[int] = field(default_factory=set)  # call ids whose first message is on disk
    rendering: set[int] = field(default_factory=set)
    wanted: int = 0  # calls the dispatcher last wanted and could not have (0: none waiting)
    # When a look found nothing queued (None: since then calls were stored, or never empty).
    empty_at: float | None = None
    nudged: gevent.event.Event = field(default_factory=gevent.event.Event)
    loop: gevent.Greenlet | None = None


class FirstPrompts:
    """Renders the first message of each organization's next queued calls before their claim."""

    def __init__(
        self,
        store: UpcomingCalls,
        prompts: PromptFiles,
        programs: Programs,
        *,
        window: int = DEFAULT_WINDOW,
        workers: int = DEFAULT_WORKERS,
        on_ready: Callable[[str], None] = lambda organization_id: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.prompts = prompts
        self.programs = programs
        self.window = window
        self.workers = workers
        self.on_ready = on_ready  # the dispatcher's wake: a call it waited for can be claimed
        self.clock = clock
        self.rendered = 0  # first messages made ready (what tests and benchmarks read)
        self._queues: dict[str, _Queue] = {}
        self._stopping = False

    def ready(self, organization_id: str, wanted: int) -> int:
        """How many of the organization's next calls (at most ``wanted``) have their first
        message on disk, counted from the queue head: a claim takes calls in that order."""
        queue = self._queue(organization_id)
        count = self._leading_ready(queue, wanted)
        queue.wanted = wanted if count < wanted else 0
        # Look at the queue again when what is known of it is used up or nothing of it is in
        # the works; else the renders under way wake the dispatcher as they are done. A queue
        # found empty is not read again at every pass (each freed line of a drained queue
        # made one: 170 of 243 reads found nothing) until calls are stored or IDLE_LOOK_SECONDS
        # pass (a retry falling due, another node's request: the dispatcher's tick asks).
        if count < wanted and (
            count == len(queue.head) or not queue.rendering or self._idle(queue)
        ) and not self._known_empty(queue):
            self._nudge(organization_id, queue)
        return count

    def calls_stored(self, organization_id: str) -> None:
        """Calls of the organization were stored or went back to its queue: worth a look."""
        self._queue(organization_id).empty_at = None

    def claimed(self, organization_id: str, call_ids: Iterable[int]) -> None:
        """These calls were claimed: they leave the head, and their places are looked ahead."""
        queue = self._queue(organization_id)
        taken = set(call_ids)
        if not taken:
            return
        queue.head = [call_id for call_id in queue.head if call_id not in taken]
        queue.ready -= taken
        if len(queue.head) <= self.window // 2:  # half the look-ahead used: look further
            self._nudge(organization_id, queue)

    def stop(self) -> None:
        """Stop looking ahead (renders under way finish into the cache)."""
        self._stopping = True
        for queue in self._queues.values():
            queue.nudged.set()
            if queue.loop is not None:
                queue.loop.kill(block=False)

    # --- the look-ahead, one greenlet per organization with queued calls ----------------------

    @staticmethod
    def _leading_ready(queue: _Queue, most: int) -> int:
        count = 0
        for call_id in queue.head:
            if count >= most or call_id not in queue.ready:
                break
            count += 1
        return count

    def _queue(self, organization_id: str) -> _Queue:
        queue = self._queues.get(organization_id)
        if queue is None:
            queue = self._queues[organization_id] = _Queue()
        return queue

    def _known_empty(self, queue: _Queue) -> bool:
        return queue.empty_at is not None and self.clock() - queue.empty_at < IDLE_LOOK_SECONDS

    @staticmethod
    def _idle(queue: _Queue) -> bool:
        return queue.loop is None or queue.loop.dead

    def _nudge(self, organization_id: str, queue: _Queue) -> None:
        queue.nudged.set()
        if not self._stopping and self._idle(queue):
            queue.loop = gevent.spawn(self._look_ahead, organization_id, queue)

    def _look_ahead(self, organization_id: str, queue: _Queue) -> None:
        pool = gevent.pool.Pool(self.workers)
        while not self._stopping:
            queue.nudged.clear()
            try:
                upcoming = self.store.upcoming_calls(organization_id, self.window)
            except Exception:
                log.exception("could not read %s's queue; looking again soon", organization_id)
                queue.nudged.wait(IDLE_LOOK_SECONDS)
                continue
            if not upcoming and not queue.rendering:
                queue.head = []
                queue.ready.clear()
                queue.empty_at = self.clock()
                return  # nothing queued: a later ready() starts a new look
            queue.empty_at = None
            queue.head = [call.call_id for call in upcoming]
            queue.ready &= set(queue.head)  # a call cancelled or claimed elsewhere is forgotten
            for call in upcoming:
                if call.call_id in queue.ready or call.call_id in queue.rendering:
                    continue
                queue.rendering.add(call.call_id)
                pool.wait_available()  # in queue order: the head's renders start first
                if self._stopping:
                    return
                pool.spawn(self._render_first, organization_id, queue, call)
            queue.nudged.wait(IDLE_LOOK_SECONDS)

    def _render_first(self, organization_id: str, queue: _Queue, call: QueuedCall) -> None:
        try:
            program = self.programs.program(call.request_seq, call.call_flow_json)
            first = program.messages_after((program.entry,))[:1]
            for upcoming in first:
                self.prompts.audio_path(upcoming.message, call.properties)
        except RobocallError as err:
            # Dialled all the same: its runner reports the failure when the message is due.
            log.warning("call %s: first message not rendered ahead: %s", call.call_id, err)
        except Exception:
            # Not a call's own fault (a full disk, a bug): it must not hold the queue up either.
            log.exception("call %s: first message not rendered ahead", call.call_id)
        finally:
            queue.rendering.discard(call.call_id)
        queue.ready.add(call.call_id)
        self.rendered += 1
        if queue.wanted:
            enough = min(queue.wanted, CLAIM_BATCH)
            if self._leading_ready(queue, enough) >= enough or not queue.rendering:
                queue.wanted = 0
                self.on_ready(organization_id)

"""Group commit of every call's progress: one writer greenlet, many calls per transaction.

Each moment of a call (a leg, the answer, a step, the end) is a write to the store and then a
word to the observers (webhooks, metrics, the call log). Written one transaction per moment,
from a greenlet per call, the store's commits were most of robocall's CPU per call at load
(docs/load.md). Here every call's writes go into one queue; one greenlet takes all that is
waiting, writes it in one transaction (``Repo.write_progress``) and then, in the same order,
tells the observers and wakes whoever waits for a write. While it commits, the next writes
gather: the busier the process, the more calls share a commit.

What holds, as before:

- a call's writes are done in the order the call made them (one queue, first in, first out),
  and its observers hear of a moment only after that moment is committed;
- nothing the call does waits for these writes, except its end: :meth:`ProgressWriter.call_ended`
  returns once the final status is committed (and every earlier word to the observers given),
  so no webhook or status page says "final" before the store does;
- a write that fails costs only that call's detail (logged; the call goes on), and the final
  write is retried by the runner as before.
"""

from __future__ import annotations

import contextvars
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import gevent
import gevent.event

from robocall.flow.actions import StepResult
from robocall.flow.status import CallStatus, Leg
from robocall.store.progress import ProgressWrite

log = logging.getLogger(__name__)

# Writes in one transaction at most (a long transaction holds SQLite's write lock).
MAX_BATCH: Final = 500
# How long the writer waits, once woken, for more calls' writes to share its transaction. Only
# the end of a call waits for its write (nothing a callee hears does): a few ms there buy
# several calls per commit at load.
GATHER_SECONDS: Final = 0.05


class ProgressStore(Protocol):
    """What the writer needs of the store (``robocall.store.repo.Repo``)."""

    def write_progress(self, writes: list[ProgressWrite]) -> list[Any]:
        """Every write in one transaction, in order; each one's result or exception."""


@dataclass(slots=True)
class _Item:
    call_id: int
    write: ProgressWrite | None  # None: only a word to the observers
    then: Callable[..., object] | None
    args: tuple[Any, ...]
    context: contextvars.Context
    result: gevent.event.AsyncResult | None = None


class ProgressWriter:
    """Writes every call's progress in order, many calls per transaction."""

    def __init__(
        self, store: ProgressStore, *, max_batch: int = MAX_BATCH,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._gather_seconds = gather_seconds
        self._queue: deque[_Item] = deque()
        self._writer: gevent.Greenlet | None = None
        # call id -> the step it last recorded while running (a transfer's progress), which
        # its final result replaces rather than follows.
        self._running_step: dict[int, str] = {}

    # --- what the runner calls ----------------------------------------------------------------

    def leg(self, call_id: int, leg: Leg) -> None:
        self._submit(call_id, ("call_leg", (call_id, leg)))

    def answered(self, call_id: int, answered_at: float, then: Callable[..., object],
                 *args: Any) -> None:
        """The answer, then ``then(*args)`` once it is committed."""
        self._submit(call_id, ("call_answered", (call_id, answered_at)), then, args)

    def step(self, call_id: int, result: StepResult, then: Callable[..., object],
             *args: Any) -> None:
        """A step result, then ``then(*args)`` once it is committed."""
        replaces = self._running_step.get(call_id) == result.step_id
        if result.final:
            self._running_step.pop(call_id, None)
        else:
            self._running_step[call_id] = result.step_id
        name = "call_step" if replaces else "append_step"
        self._submit(call_id, (name, (call_id, result)), then, args)

    def notify(self, call_id: int, then: Callable[..., object], *args: Any) -> None:
        """``then(*args)`` after every write the call made so far is committed."""
        self._submit(call_id, None, then, args)

    def call_ended(
        self,
        call_id: int,
        *,
        status: CallStatus,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
    ) -> bool:
        """The call's final write; returns once it is committed (``Repo.call_ended``'s
        answer), raises what the store raised."""
        self._running_step.pop(call_id, None)
        result = gevent.event.AsyncResult()
        write = ("call_ended", (call_id, status, hangup_cause, ended_at, duration_seconds))
        self._submit(call_id, write, result=result)
        return bool(result.get())

    def flush(self, call_id: int) -> None:
        """Return once every write the call made so far is committed."""
        done = gevent.event.AsyncResult()
        self._submit(call_id, None, result=done)
        done.get()

    # --- the writer -----------------------------------------------------------------------------

    def _submit(
        self,
        call_id: int,
        write: ProgressWrite | None,
        then: Callable[..., object] | None = None,
        args: tuple[Any, ...] = (),
        *,
        result: gevent.event.AsyncResult | None = None,
    ) -> None:
        context = contextvars.copy_context() if then is not None else _EMPTY
        self._queue.append(_Item(call_id, write, then, args, context, result))
        if self._writer is None:
            self._writer = gevent.spawn(self._write_all)

    def _write_all(self) -> None:
        queue = self._queue
        try:
            # Let the moments of other calls that are due now join this transaction.
            gevent.sleep(self._gather_seconds)
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
                self._write(batch)
        finally:
            self._writer = None
            if queue:  # killed mid-way with work left (never in practice): carry on
                self._writer = gevent.spawn(self._write_all)

    def _write(self, batch: list[_Item]) -> None:
        writes = [item.write for item in batch if item.write is not None]
        try:
            results = iter(self._store.write_progress(writes) if writes else [])
        except Exception as err:  # the store's own fallback failed too: every write fails
            log.exception("recording calls' progress failed")
            results = iter([err] * len(writes))
        for item in batch:
            outcome: Any = next(results) if item.write is not None else None
            failed = isinstance(outcome, Exception)
            if failed and item.result is None:
                # The call goes on; its final status is still written at its end.
                log.error("call %s: recording its progress (%s) failed: %s",
                          item.call_id, item.write[0] if item.write else "", outcome)
            if item.then is not None:
                item.context.run(_tell, item.then, item.args)
            if item.result is not None:
                if failed:
                    item.result.set_exception(outcome)
                else:
                    item.result.set(outcome)


_EMPTY: Final = contextvars.Context()


def _tell(then: Callable[..., object], args: tuple[Any, ...]) -> None:
    try:
        then(*args)
    except Exception:
        log.exception("telling of a call's progress failed")

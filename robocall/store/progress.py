"""The repository's writes of a call's progress: its legs, its answer, its steps, its end.

Part of :class:`robocall.store.repo.Repo` (a mixin). These are the statements every call makes
(docs/load.md: they were most of robocall's CPU per call), so they are written for the hot path:

- plain SQL, prepared once per dialect, not built by the query builder for every call (peewee
  spent ~0.3 ms building each statement, more than the database took to run it);
- one statement per moment: a leg or a step is appended to its JSON array by the database
  (the text robocall's ``json.dumps`` would give), not read, decoded, re-encoded and written;
  a call's end updates the call and returns its request, and the request completes in the
  same statement that checks it has no live call left;
- many calls' moments in one transaction (:meth:`ProgressQueries.write_progress`, the runner's
  group commit, ``robocall.calls.progress``): one commit for all, each call's own in order.

Each method below is also callable on its own, one transaction per call, as before.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import peewee

from robocall.flow.actions import StepResult
from robocall.flow.model import RetryPolicy
from robocall.flow.parse import parse_retry
from robocall.flow.schedule import should_retry
from robocall.flow.status import Leg
from robocall.store.call_report import leg_record, step_record, with_step
from robocall.store.records import CallStatus, RequestStatus

# One progress write: the name of a ProgressQueries method and its positional arguments
# ("call_leg", "call_answered", "call_answered_by", "call_step", "append_step", "call_ended").
ProgressWrite = tuple[str, tuple[Any, ...]]

_LIVE: Final = (CallStatus.QUEUED.value, CallStatus.DIALING.value, CallStatus.ON_PROGRESS.value)
_ACTIVE_REQUEST: Final = (RequestStatus.SUBMITTED.value, RequestStatus.ON_PROGRESS.value)


class _Statements:
    """The progress statements in one dialect's parameter style (``?`` or ``%s``)."""

    def __init__(self, p: str) -> None:
        def append(column: str) -> str:
            # The array's text as json.dumps writes it: "[a]", then "[a, b]".
            return (
                f"UPDATE calls SET {column} = CASE WHEN {column} = '[]' THEN '[' || {p} || ']' "
                f"ELSE substr({column}, 1, length({column}) - 1) || ', ' || {p} || ']' END, "
                f"updated_at = {p} WHERE id = {p}"
            )

        self.append_leg = append("monitor")
        self.append_step = append("steps")
        self.answered = (
            f"UPDATE calls SET status = {p}, answered_at = {p}, updated_at = {p} WHERE id = {p}"
        )
        self.answered_by = (
            f"UPDATE calls SET answered_by = {p}, answered_by_ms = {p}, updated_at = {p} "
            f"WHERE id = {p}"
        )
        self.read_steps = f"SELECT steps FROM calls WHERE id = {p}"
        self.write_steps = f"UPDATE calls SET steps = {p}, updated_at = {p} WHERE id = {p}"
        self.retry_facts = (
            "SELECT c.request_seq, c.attempt, r.retry_policy, r.cancelled_at FROM calls c "
            f"JOIN call_requests r ON c.request_seq = r.id WHERE c.id = {p}"
        )
        # PostgreSQL only (a list binds as an ARRAY there): the batch's reads and checks.
        self.retry_facts_many = (
            "SELECT c.id, c.request_seq, c.attempt, r.retry_policy, r.cancelled_at FROM calls c "
            f"JOIN call_requests r ON c.request_seq = r.id WHERE c.id = ANY({p})"
        )
        self.finished_by_batch = (
            "SELECT c.id, c.request_seq FROM calls c JOIN call_requests r "
            f"ON c.request_seq = r.id WHERE c.id = ANY({p}) AND r.status IN ({p}, {p}) "
            f"AND r.updated_at = {p}"
        )
        self.ended_plain = (
            f"UPDATE calls SET status = {p}, hangup_cause = {p}, ended_at = {p}, "
            f"duration_seconds = {p}, updated_at = {p} WHERE id = {p}"
        )
        self.ended = f"{self.ended_plain} RETURNING request_seq"
        self.requeued = (
            f"UPDATE calls SET status = {p}, channel_uuid = NULL, hangup_cause = {p}, "
            f"steps = '[]', next_attempt_at = {p}, updated_at = {p} WHERE id = {p}"
        )
        live = ", ".join([p] * len(_LIVE))
        active = ", ".join([p] * len(_ACTIVE_REQUEST))
        # The request is final once none of its calls is live: checked and done in one.
        self.finish_request = (
            f"UPDATE call_requests SET status = CASE WHEN cancelled_at IS NULL THEN {p} "
            f"ELSE {p} END, updated_at = {p} WHERE id = {p} AND status IN ({active}) AND "
            "(SELECT COALESCE(SUM(count), 0) FROM request_counts "
            f"WHERE request_seq = {p} AND status IN ({live})) = 0"
        )
        # The same, for the request of call {p} (sent right behind that call's end).
        of_call = f"(SELECT request_seq FROM calls WHERE id = {p})"
        self.finish_call_request = self.finish_request.replace(
            f"WHERE id = {p} AND", f"WHERE id = {of_call} AND"
        ).replace(f"request_seq = {p} AND", f"request_seq = {of_call} AND")


@functools.cache
def _statements(param: str) -> _Statements:
    return _Statements(param)


class ProgressQueries:
    """A call's progress (the runner's CallLog). Mixed into ``Repo``."""

    _db: peewee.Database
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]

    @property
    def _sql(self) -> _Statements:
        return _statements(self._db.param)

    # --- many calls at once -------------------------------------------------------------------

    def write_progress(self, writes: Sequence[ProgressWrite]) -> list[Any]:
        """Every write in one transaction, in order; each one's result (or the exception it
        raised) in the same order. When one fails, the transaction is rolled back and each
        write is done again in a transaction of its own, so one call's failure costs no other
        call its progress. Not durable against a power cut on SQLite (as every progress
        write: docs/design.md, "Reliability"); against robocall's own crash, it is."""
        try:
            with self._writing(durable=False):
                return self._write_in_order(writes)
        except Exception as err:
            if len(writes) == 1:
                return [err]
        results: list[Any] = []
        for write in writes:
            try:
                with self._writing(durable=False):
                    results += self._write_in_order([write])
            except Exception as err:
                results.append(err)
        return results

    def _write_in_order(self, writes: Sequence[ProgressWrite]) -> list[Any]:
        """Inside the transaction. Writes whose result nobody reads (a leg, an answer, a
        step) are sent together: on PostgreSQL as one round trip of several statements, the
        calls' ends with them, after one read of the retry facts of the calls that failed.

        Why the ends too: a call's end changes its request's status counts
        (``request_counts``, kept by a trigger), and so does every claim of a call of that
        request (``queued`` -> ``dialing``). The batch holds those rows locked from its first
        such statement to its commit, so a claim waits for all of it. Sent one round trip per
        end (each end must tell whether it made its request final), a batch of ends held them
        100-500 ms on the busy lab machine and claims queued behind it: freed lines waited ~1 s
        for their next call (docs/load.md, "a freed line's next call, stage by stage"). So
        whether an end finished its request is read afterwards, in the same transaction: a
        request the batch made final carries the batch's ``updated_at``, and of its calls
        ended here the last one (in the batch's order) finished it — before, that one itself
        was live. SQLite (one writer at a time, no such wait) ends each call on its own."""
        batched = self._db.param == "%s"
        now = self._now()
        facts = self._retry_facts(
            [args[0] for name, args in writes
             if batched and name == "call_ended" and CallStatus(args[1]) is CallStatus.FAILED]
        )
        results: list[Any] = []
        pending: list[tuple[str, tuple[Any, ...]]] = []
        finishing: list[tuple[int, int]] = []  # (index in results, call id): may finish a request
        for name, args in writes:
            statement = _PLAIN.get(name)
            if statement is not None:
                pending.append(statement(self, *args))
                results.append(None)
            elif name == "call_ended" and batched:
                if self._end_statements(args, now=now, facts=facts, into=pending):
                    finishing.append((len(results), args[0]))
                results.append(False)
            elif name == "call_ended":
                results.append(self._call_ended(*args, before=pending))
            else:
                self._finish_batch(pending, finishing, results, now)
                results.append(getattr(self, f"_{name}")(*args))
        self._finish_batch(pending, finishing, results, now)
        return results

    def _retry_facts(self, call_ids: list[int]) -> dict[int, tuple[Any, ...]]:
        """Each failed call's request, attempt, retry policy and the request's cancellation."""
        if not call_ids:
            return {}
        rows = self._db.execute_sql(self._sql.retry_facts_many, (call_ids,)).fetchall()
        return {row[0]: tuple(row[1:]) for row in rows}

    def _end_statements(
        self,
        end: tuple[Any, ...],
        *,
        now: datetime,
        facts: dict[int, tuple[Any, ...]],
        into: list[tuple[str, tuple[Any, ...]]],
    ) -> bool:
        """A call's end (``call_ended``'s arguments) as statements added to ``into``, as
        :meth:`_call_ended` does it. True when it may finish its request (it ended; not
        requeued for a retry, not an unknown call)."""
        call_id, status, hangup_cause, ended_at, duration_seconds = end
        sql = self._sql
        final = CallStatus(status)
        if final is CallStatus.FAILED:
            found = facts.get(call_id)
            if found is None:
                return False
            later = _retry_at(found, hangup_cause, now)
            if later is not None:
                into.append((sql.requeued, (CallStatus.QUEUED.value, hangup_cause, later, now,
                                            call_id)))
                return False
        values = (final.value, hangup_cause, _stamp(ended_at), duration_seconds, now, call_id)
        finish = (
            RequestStatus.COMPLETED.value, RequestStatus.CANCELLED.value, now, call_id,
            *_ACTIVE_REQUEST, call_id, *_LIVE,
        )
        into += [(sql.ended_plain, values), (sql.finish_call_request, finish)]
        return True

    def _finish_batch(
        self,
        pending: list[tuple[str, tuple[Any, ...]]],
        finishing: list[tuple[int, int]],
        results: list[Any],
        now: datetime,
    ) -> None:
        """Send ``pending`` in one round trip; then mark in ``results`` the ends that made
        their request final (and empty ``finishing``)."""
        self._send(pending)
        if not finishing:
            return
        rows = self._db.execute_sql(
            self._sql.finished_by_batch,
            ([call_id for _, call_id in finishing], RequestStatus.COMPLETED.value,
             RequestStatus.CANCELLED.value, now),
        ).fetchall()
        request_of = dict(rows)
        last_end: dict[int, int] = {}  # request -> index of its last end in the batch
        for index, call_id in finishing:
            if call_id in request_of:
                last_end[request_of[call_id]] = index
        for index in last_end.values():
            results[index] = True
        finishing.clear()

    def _send(self, statements: list[tuple[str, tuple[Any, ...]]]) -> Any:
        """Send ``statements`` (and empty the list); the cursor of the last one, if any."""
        cursor = None
        if len(statements) > 1 and self._db.param == "%s":
            # psycopg2 binds parameters on the client, so this is exactly what it would send
            # for each statement, joined; the cursor then tells of the last one.
            mogrify = self._db.cursor().mogrify
            sql = ";".join(mogrify(text, params).decode() for text, params in statements)
            cursor = self._db.execute_sql(sql)
        else:
            for text, params in statements:
                cursor = self._db.execute_sql(text, params)
        statements.clear()
        return cursor

    # --- one call at a time (each its own transaction) ----------------------------------------

    def call_leg(self, call_id: int, leg: Leg) -> None:
        """Record one FreeSWITCH leg of the call."""
        with self._writing(durable=False):
            self._call_leg(call_id, leg)

    def call_step(self, call_id: int, result: StepResult) -> None:
        """Record one step result (a running transfer's final result replaces its progress)."""
        with self._writing(durable=False):
            self._call_step(call_id, result)

    def call_answered_by(self, call_id: int, answered_by: str, after_ms: int) -> None:
        """Answering-machine detection's verdict: who answered, ms after the answer."""
        with self._writing(durable=False):
            self._call_answered_by(call_id, answered_by, after_ms)

    def call_answered(self, call_id: int, answered_at: float) -> None:
        """The callee answered: the call is ``onProgress``."""
        with self._writing(durable=False):
            self._call_answered(call_id, answered_at)

    def call_ended(
        self,
        call_id: int,
        *,
        status: CallStatus,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
    ) -> bool:
        """The call is final; its request completes with its last live call (then True).

        An unanswered attempt whose definite outcome its request's retry policy names, with
        attempts left, goes back to ``queued`` instead, due after the policy's backoff.
        """
        with self._writing(durable=False):
            return self._call_ended(call_id, status, hangup_cause, ended_at, duration_seconds)

    # --- the statements (inside a transaction) -------------------------------------------------

    def _call_leg(self, call_id: int, leg: Leg) -> None:
        self._db.execute_sql(*self._leg_statement(call_id, leg))

    def _leg_statement(self, call_id: int, leg: Leg) -> tuple[str, tuple[Any, ...]]:
        return self._sql.append_leg, _appended(json.dumps(leg_record(leg)), self._now(), call_id)

    def _append_step_statement(
        self, call_id: int, result: StepResult
    ) -> tuple[str, tuple[Any, ...]]:
        """Append a step result: only when the call's last stored step is not this step
        reported while running (the caller knows: ``robocall.calls.progress``)."""
        record = json.dumps(step_record(result))
        return self._sql.append_step, _appended(record, self._now(), call_id)

    def _call_step(self, call_id: int, result: StepResult) -> None:
        sql = self._sql
        row = self._db.execute_sql(sql.read_steps, (call_id,)).fetchone()
        if row is None:
            return
        steps = json.dumps(with_step(json.loads(row[0]), result))
        self._db.execute_sql(sql.write_steps, (steps, self._now(), call_id))

    def _call_answered_by(self, call_id: int, answered_by: str, after_ms: int) -> None:
        self._db.execute_sql(*self._answered_by_statement(call_id, answered_by, after_ms))

    def _answered_by_statement(
        self, call_id: int, answered_by: str, after_ms: int
    ) -> tuple[str, tuple[Any, ...]]:
        return self._sql.answered_by, (answered_by, after_ms, self._now(), call_id)

    def _call_answered(self, call_id: int, answered_at: float) -> None:
        self._db.execute_sql(*self._answered_statement(call_id, answered_at))

    def _answered_statement(self, call_id: int, answered_at: float) -> tuple[str, tuple[Any, ...]]:
        status = CallStatus.ON_PROGRESS.value
        return self._sql.answered, (status, _stamp(answered_at), self._now(), call_id)

    def _call_ended(
        self,
        call_id: int,
        status: CallStatus,
        hangup_cause: str,
        ended_at: float,
        duration_seconds: float | None,
        *,
        before: list[tuple[str, tuple[Any, ...]]] | None = None,
    ) -> bool:
        """The end of a call, after the statements ``before`` (other writes of the batch).
        On PostgreSQL the end and its request's completion go with them in one round trip."""
        sql = self._sql
        final = CallStatus(status)
        now = self._now()
        pending = before if before is not None else []
        if final is CallStatus.FAILED:
            self._send(pending)
            # Only a failed attempt may be retried: only then are the policy and attempt read.
            row = self._db.execute_sql(sql.retry_facts, (call_id,)).fetchone()
            if row is None:
                return False
            later = _retry_at(tuple(row), hangup_cause, now)
            if later is not None:
                # hangup_cause: the last attempt's, until the next one ends
                self._db.execute_sql(
                    sql.requeued,
                    (CallStatus.QUEUED.value, hangup_cause, later, now, call_id),
                )
                return False
        values = (final.value, hangup_cause, _stamp(ended_at), duration_seconds, now, call_id)
        if self._db.param == "%s":
            finish = (
                RequestStatus.COMPLETED.value, RequestStatus.CANCELLED.value, now, call_id,
                *_ACTIVE_REQUEST, call_id, *_LIVE,
            )
            pending += [(sql.ended_plain, values), (sql.finish_call_request, finish)]
            return bool(self._send(pending).rowcount)
        self._send(pending)
        # all of it: SQLite finishes a RETURNING statement on its last row
        ended = self._db.execute_sql(sql.ended, values).fetchall()
        if not ended:
            return False
        return self._finish_request(ended[0][0], now)

    def _finish_request(self, request_seq: int, now: datetime) -> bool:
        """Once none of its calls is live, a request is ``completed`` (``cancelled`` if the
        client cancelled it). True when this call made it final."""
        cursor = self._db.execute_sql(
            self._sql.finish_request,
            (
                RequestStatus.COMPLETED.value, RequestStatus.CANCELLED.value, now, request_seq,
                *_ACTIVE_REQUEST, request_seq, *_LIVE,
            ),
        )
        return bool(cursor.rowcount)


# The writes whose result nobody reads, as the statement each one is (sent in bulk).
_PLAIN: Final[dict[str, Callable[..., tuple[str, tuple[Any, ...]]]]] = {
    "call_leg": ProgressQueries._leg_statement,
    "append_step": ProgressQueries._append_step_statement,
    "call_answered": ProgressQueries._answered_statement,
    "call_answered_by": ProgressQueries._answered_by_statement,
}


def _appended(record: str, now: datetime, call_id: int) -> tuple[Any, ...]:
    return (record, record, now, call_id)


@functools.lru_cache(maxsize=1024)
def _retry_at(
    facts: tuple[Any, ...], hangup_cause: str, now: datetime
) -> datetime | None:
    """When a failed attempt is dialled again, by its request's retry policy (None: never):
    ``facts`` are the call's request, attempt, retry policy and the request's cancellation."""
    _request_seq, attempt, retry_policy, cancelled_at = facts
    policy = _retry(retry_policy)
    if cancelled_at is None and should_retry(policy, hangup_cause, attempt):
        assert policy is not None  # should_retry is False without one
        return now + timedelta(seconds=policy.backoff_seconds)
    return None


def _retry(text: str | None) -> RetryPolicy | None:
    return parse_retry(json.loads(text)) if text else None


def _stamp(epoch_seconds: float) -> datetime:
    # stored naive in UTC, as every timestamp of the store
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)

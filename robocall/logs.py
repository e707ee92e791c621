"""Logging: plain text by default, JSON lines with ``ROBOCALL_LOG_JSON=true``.

Every record logged while a call runs carries that call's ids — ``request_id`` (the client's
requestId), ``call_id`` (robocall's, as in ``/v1/recordings/{callId}``), ``channel_uuid`` (what
a PBX admin passes to ``uuid_dump``) and ``organization`` — whichever module logs it. The runner
binds them once per call with :func:`call_context`; a filter on the handler copies them onto each
record. The context lives in a ``ContextVar``, and greenlet gives every greenlet its own context,
so one call's ids never leak onto another's lines.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from robocall.flow.actions import StepResult
from robocall.store.records import CallStatus, CallTicket

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CALL_FIELDS = ("organization", "request_id", "call_id", "channel_uuid")

_call_fields: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "robocall_call_fields", default=None
)


@contextmanager
def call_context(ticket: CallTicket) -> Iterator[None]:
    """Within this block (in this greenlet), log records carry ``ticket``'s ids."""
    token = _call_fields.set(
        {
            "organization": ticket.organization_id,
            "request_id": ticket.request_id,
            "call_id": str(ticket.call_id),
            "channel_uuid": ticket.channel_uuid,
        }
    )
    try:
        yield
    finally:
        _call_fields.reset(token)


class CallContextFilter(logging.Filter):
    """Copies the current call's ids onto each record (leaving ids a caller passed in ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _call_fields.get()
        if fields:
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the call's ids, any exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CALL_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def make_handler(*, json_lines: bool, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) as text or JSON lines, with the call's ids."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(CallContextFilter())
    return handler


def configure(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr as text or as JSON lines.

    Replaces any handlers already installed (``robocall`` calls it once settings are read).
    """
    logging.basicConfig(level=level, handlers=[make_handler(json_lines=json_lines)], force=True)


class CallEventLog:
    """A call observer that logs each call's dialing and end (answer and steps at DEBUG).

    It runs in the call's greenlet, inside :func:`call_context`, so each line carries the
    call's ids: from ``"channel_uuid": "..."`` straight to ``uuid_dump <uuid>`` in fs_cli.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("robocall.calls")

    def call_dialing(self, ticket: CallTicket) -> None:
        self._log.info("call %s: dialing %s", ticket.call_id, ticket.phone)

    def call_answered(self, ticket: CallTicket) -> None:
        self._log.debug("call %s: answered", ticket.call_id)

    def call_answered_by(self, ticket: CallTicket, answered_by: str, after_ms: int) -> None:
        self._log.info("call %s: answered by %s (%d ms)", ticket.call_id, answered_by, after_ms)

    def call_step(self, ticket: CallTicket, result: StepResult) -> None:
        self._log.debug(
            "call %s: step %s (%s): %s",
            ticket.call_id, result.step_id, result.step_name.value, result.status.value,
        )

    def call_ended(
        self,
        ticket: CallTicket,
        status: CallStatus,
        hangup_cause: str,
        duration_seconds: float | None,
    ) -> None:
        self._log.info("call %s: %s (%s)", ticket.call_id, status.value, hangup_cause or "no cause")

    def request_completed(self, ticket: CallTicket) -> None:
        self._log.info("request %s: completed", ticket.request_id)

"""Who hears of a call's progress besides the store: webhooks, metrics, logs.

The runner tells an :class:`Observers` fan-out of each moment of a call. An observer must be
quick (it runs in the call's greenlet) and its failure never breaks the call: a webhook outbox
write or a metrics counter is worth a log line, not a dropped call.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from robocall.flow.actions import StepResult
from robocall.flow.status import CallStatus
from robocall.store.records import CallTicket

log = logging.getLogger(__name__)


class CallObserver(Protocol):
    """The moments of a call, in order. Every method is optional to act on, none may block."""

    def call_dialing(self, ticket: CallTicket) -> None:
        """The originate was sent."""

    def call_answered(self, ticket: CallTicket) -> None:
        """The callee answered."""

    def call_answered_by(self, ticket: CallTicket, answered_by: str, after_ms: int) -> None:
        """Answering-machine detection decided who answered, ``after_ms`` after the answer."""

    def call_step(self, ticket: CallTicket, result: StepResult) -> None:
        """A step ended, or a running transfer got further (``result.final`` is then False)."""

    def call_ended(
        self,
        ticket: CallTicket,
        status: CallStatus,
        hangup_cause: str,
        duration_seconds: float | None,
    ) -> None:
        """The call is final (``completed`` or ``failed``)."""

    def request_completed(self, ticket: CallTicket) -> None:
        """``ticket``'s call was the last live one of its request: the request is completed."""


class Observers:
    """Tells every registered observer, shielding the call from their failures."""

    def __init__(self, *observers: CallObserver) -> None:
        self._observers: list[CallObserver] = list(observers)

    def add(self, observer: CallObserver) -> None:
        self._observers.append(observer)

    def call_dialing(self, ticket: CallTicket) -> None:
        self._tell("call_dialing", ticket)

    def call_answered(self, ticket: CallTicket) -> None:
        self._tell("call_answered", ticket)

    def call_answered_by(self, ticket: CallTicket, answered_by: str, after_ms: int) -> None:
        self._tell("call_answered_by", ticket, answered_by, after_ms)

    def call_step(self, ticket: CallTicket, result: StepResult) -> None:
        self._tell("call_step", ticket, result)

    def call_ended(
        self,
        ticket: CallTicket,
        status: CallStatus,
        hangup_cause: str,
        duration_seconds: float | None,
    ) -> None:
        self._tell("call_ended", ticket, status, hangup_cause, duration_seconds)

    def request_completed(self, ticket: CallTicket) -> None:
        self._tell("request_completed", ticket)

    def _tell(self, moment: str, *args: Any) -> None:
        for observer in self._observers:
            method = getattr(observer, moment, None)
            if method is None:  # an observer written before this moment existed
                continue
            try:
                method(*args)
            except Exception:
                log.exception(
                    "observer %r failed on %s of call %s", observer, moment, args[0].call_id
                )

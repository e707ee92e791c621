"""``GET /v1/webhooks/deliveries``: the organization's webhook delivery log, one page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import falcon

from robocall.api import views
from robocall.calls.webhooks import redact_url
from robocall.errors import InputError
from robocall.store.repo import Repo
from robocall.store.webhooks import OutboxRow, OutboxStatus

MAX_REQUEST_ID_CHARS = 200


@dataclass
class DeliveriesResource:
    """Each event sent (or being sent) to the organization's callback URLs, oldest first."""

    repo: Repo

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request_id = req.get_param("requestId")
        if request_id is not None and not 1 <= len(request_id) <= MAX_REQUEST_ID_CHARS:
            raise InputError("requestId", f"must be 1 to {MAX_REQUEST_ID_CHARS} characters")
        limit = views.page_limit(req.get_param("limit"))
        cursor = req.get_param("cursor")
        after = views.decode_cursor(cursor) if cursor is not None else None
        rows, next_after = self.repo.webhook_deliveries(
            req.context.organization.id, request_id=request_id, limit=limit, after_id=after
        )
        resp.media = {
            "deliveries": [delivery_view(row) for row in rows],
            "nextCursor": views.encode_cursor(next_after) if next_after else None,
        }


def delivery_view(row: OutboxRow) -> dict[str, Any]:
    """One delivery as the API shows it (the URL without credentials or query)."""
    return {
        "id": str(row.id),
        "eventId": row.event_id,
        "event": row.event,
        "requestId": row.request_id,
        "callId": str(row.call_id),
        "url": redact_url(row.url),
        "status": row.status,
        "attempts": row.attempts,
        "httpStatus": row.last_http_status,
        "error": row.last_error,
        "deliveredAt": _iso(row.delivered_at),
        "nextAttemptAt": (
            _iso(row.next_attempt_at) if row.status == OutboxStatus.PENDING else None
        ),
        "createdAt": _iso(row.created_at),
        "attemptLog": row.attempt_log,
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")

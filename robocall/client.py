"""A small HTTP client for robocall's REST API (what ``robocall submit`` / ``status`` use).

It speaks to a running server over HTTP, exactly as any other client would, and turns the
API's answers back into robocall's errors: 400 -> InputError, 401 -> AuthError, 404 -> NotFound
(the inverse of ``robocall.api.errors``), a connection that fails -> ApiUnreachable naming the
URL. Only the standard library is used, so the client adds no dependency.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robocall import errors
from robocall.api.auth import API_KEY_HEADER

DEFAULT_TIMEOUT_SECONDS = 30.0
PAGE_SIZE = 1000  # the API's largest status page
FINAL_REQUEST_STATUSES = frozenset({"completed", "cancelled"})
FINAL_CALL_STATUSES = frozenset({"completed", "failed", "cancelled"})

# The API's error statuses as robocall's errors (robocall.api.errors maps the other way).
_ERRORS_BY_STATUS: dict[int, type[errors.RobocallError]] = {
    401: errors.AuthError,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    429: errors.RateLimited,
}


def read_request_file(path: Path) -> dict[str, Any]:
    """The JSON body in ``path``; InputError naming the file and the problem if it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise errors.InputError(str(path), f"cannot read it: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise errors.InputError(str(path), "is not UTF-8 text") from err
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"is not JSON: {err.msg} at line {err.lineno} column {err.colno}"
        raise errors.InputError(str(path), problem) from err
    if not isinstance(body, dict):
        raise errors.InputError(str(path), "must hold one JSON object (the /v1/call body)")
    if not isinstance(body.get("requestId"), str) or not body["requestId"]:
        raise errors.InputError(f"{path}: requestId", "is required (a string you choose)")
    return body


@dataclass(frozen=True)
class RobocallClient:
    """robocall's API at ``base_url``, used with one organization's ``key``."""

    base_url: str
    key: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/call: store the request; its first status page."""
        return self._call("POST", "/v1/call", body)

    def status(
        self, request_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """GET /v1/status/{requestId}: one page of its status (counts, total, details)."""
        query: dict[str, str | int] = {"limit": limit}
        if cursor:
            query["cursor"] = cursor
        path = f"/v1/status/{urllib.parse.quote(request_id, safe='')}"
        return self._call("GET", f"{path}?{urllib.parse.urlencode(query)}")

    def counts(self, request_id: str) -> dict[str, Any]:
        """The request's status with as few details as the API allows (for polling)."""
        return self.status(request_id, limit=1)

    def calls(self, request_id: str) -> Iterator[dict[str, Any]]:
        """Every call of the request, page after page, in the order they were submitted."""
        cursor: str | None = None
        while True:
            page = self.status(request_id, limit=PAGE_SIZE, cursor=cursor)
            yield from page["details"]
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        url = f"{self.base_url.rstrip('/')}{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.key:
            request.add_header(API_KEY_HEADER, self.key)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _json_object(response.read(), url)
        except urllib.error.HTTPError as err:
            raise _api_error(err.code, err.read(), url) from err
        except (TimeoutError, urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise errors.ApiUnreachable(
                f"no robocall API at {self.base_url} ({reason}); is `robocall serve` running "
                "there? Pass --url or set ROBOCALL_URL"
            ) from err


def _json_object(raw: bytes, url: str) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError as err:
        raise errors.ApiFailed(f"{url} answered something that is not JSON") from err
    if not isinstance(answer, dict):
        raise errors.ApiFailed(f"{url} answered JSON that is not an object")
    return answer


def _api_error(status: int, raw: bytes, url: str) -> errors.RobocallError:
    try:
        message = str(json.loads(raw).get("message") or "")
    except (ValueError, AttributeError):
        message = raw.decode("utf-8", "replace")[:200]
    message = message or f"HTTP {status}"
    if status == 400:
        return errors.InputError("", message)
    if status == 401:
        return errors.AuthError(f"{message} (check --key or ROBOCALL_API_KEY)")
    kind = _ERRORS_BY_STATUS.get(status)
    if kind is not None:
        return kind(message)
    return errors.ApiFailed(f"{url} answered HTTP {status}: {message}")

"""The one place that turns errors into HTTP answers: ``{"status": "error", "message": ...}``.

Domain errors come from ``robocall.errors``; Falcon's own (unknown route, wrong method) are
reshaped to the same body so a client parses one error format.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from robocall import errors

log = logging.getLogger(__name__)

HTTP_STATUS: tuple[tuple[type[errors.RobocallError], int], ...] = (
    (errors.InputError, 400),
    (errors.AuthError, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.RateLimited, 429),
    (errors.StoreError, 503),
)


def status_for(error: errors.RobocallError) -> int:
    """The HTTP status a domain error is answered with (500 for one with no mapping)."""
    for kind, status in HTTP_STATUS:
        if isinstance(error, kind):
            return status
    return 500


def install(app: falcon.App[Any, Any]) -> None:
    """Register the handlers on ``app`` (the most specific class wins in Falcon)."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _falcon_error)
    app.add_error_handler(errors.RobocallError, _domain_error)


def _answer(resp: falcon.Response, status: int, message: str) -> None:
    resp.status = status
    resp.media = {"status": "error", "message": message}


def _domain_error(req: falcon.Request, resp: falcon.Response, ex: Any, params: Any) -> None:
    status = status_for(ex)
    if status >= 500:
        log.error("%s %s failed: %s", req.method, req.path, ex)
        _answer(resp, status, "the service cannot answer now; try again later")
        return
    if isinstance(ex, errors.RateLimited):  # args: (message, seconds until a token is back)
        resp.set_header("Retry-After", str(ex.args[1] if len(ex.args) > 1 else 1))
    _answer(resp, status, str(ex.args[0]) if ex.args else type(ex).__doc__ or "error")


def _falcon_error(req: falcon.Request, resp: falcon.Response, ex: Any, params: Any) -> None:
    for name, value in (ex.headers or {}).items():
        resp.set_header(name, value)
    message = ex.title if not ex.description else f"{ex.title}: {ex.description}"
    _answer(resp, ex.status_code, message)


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Any, params: Any) -> None:
    if isinstance(ex, falcon.HTTPError):  # Falcon calls the most specific handler; be safe
        _falcon_error(req, resp, ex, params)
        return
    log.exception("%s %s: unexpected error", req.method, req.path)
    _answer(resp, 500, "internal error")

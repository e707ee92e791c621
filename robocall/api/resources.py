"""The HTTP resources: thin — read the request, call validation and the store, shape the answer."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import falcon
import gevent
import orjson

from robocall.api import views
from robocall.api.schema import openapi_document, validate_call_request
from robocall.errors import (
    Conflict,
    InputError,
    NotFound,
    PayloadTooLarge,
    WebhookTargetRefused,
)
from robocall.flow.parse import parse_call_request
from robocall.store.repo import Repo


@dataclass
class CallResource:
    """``POST /v1/call``: validate, store atomically, answer the first page of the status."""

    repo: Repo
    languages: frozenset[str]
    max_destinations: int
    max_body_bytes: int
    on_request_stored: Callable[[str], None]
    # Vets a callbackUrl's host (raises WebhookTargetRefused when it is, or resolves to, an
    # address inside the operator's network): calls.webhook_targets.TargetPolicy.vet_url.
    vet_callback_url: Callable[[str], object] = lambda url: None

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with _cyclic_gc_paused():
            self._submit(req, resp)

    def _submit(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = read_body(req, self.max_body_bytes)
        body = parse_json(raw)
        validate_call_request(body, raw)
        org_id = req.context.organization.id
        body_hash = canonical_hash(body)
        existing = self.repo.find_request(org_id, body["requestId"])
        created = False
        if existing is None:
            # an identical retry skips re-checking 100,000 destinations: it passed before
            request = parse_call_request(
                body,
                languages=self.languages,
                max_destinations=self.max_destinations,
                pause=_yield_to_hub,
            )
            if request.callback_url is not None:
                try:
                    self.vet_callback_url(request.callback_url)
                except WebhookTargetRefused as err:
                    raise InputError("callbackUrl", str(err)) from err
            call_flow_json = orjson.dumps(body["callFlow"]).decode()
            _, created = self.repo.submit_request(
                org_id,
                request,
                call_flow_json=call_flow_json,
                body_hash=body_hash,
                retry_json=_json_or_none(body.get("retry")),
                window_json=_json_or_none(body.get("window")),
            )
        elif existing.body_hash != body_hash:
            raise Conflict(f"requestId: {existing.request_id!r} was used with another body")
        page = self.repo.request_status(org_id, body["requestId"], limit=views.DEFAULT_PAGE)
        resp.media = views.status_body(page)
        if created:
            # After the answer is taken: it shows the request as submitted, nothing dialled yet.
            self.on_request_stored(org_id)



@dataclass
class StatusResource:
    """``GET /v1/status/{requestId}``: the request, counts per call status, one page of calls."""

    repo: Repo

    def on_get(self, req: falcon.Request, resp: falcon.Response, request_id: str) -> None:
        check_request_id(request_id)
        limit = views.page_limit(req.get_param("limit"))
        cursor = req.get_param("cursor")
        after = views.decode_cursor(cursor) if cursor is not None else None
        page = self.repo.request_status(
            req.context.organization.id, request_id, limit=limit, after_call_id=after
        )
        resp.media = views.status_body(page)


class OpenApiResource:
    """``GET /v1/openapi.json``: the contract document requests are validated against."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = openapi_document()


def check_request_id(request_id: str) -> None:
    """NotFound for a path's requestId no stored request can have (one holding a NUL)."""
    if "\x00" in request_id:  # refused at submission, so never stored
        raise NotFound(f"no request {request_id!r}")


def _yield_to_hub() -> None:
    gevent.sleep(0)  # a 100,000-destination parse lets other requests and calls run


_gc_pauses = 0


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a request is ingested.

    A 100,000-destination body is a million new objects; the collector, triggered every 700
    allocations, rescans them again and again: 0.36 s of a 0.5 s parse here, 0.14 s without.
    Nothing ingest builds is cyclic; reference counting frees it all, and the collector runs
    again as soon as the last concurrent ingest ends.
    """
    global _gc_pauses
    if _gc_pauses == 0 and not gc.isenabled():
        yield  # someone else turned it off; not ours to turn back on
        return
    _gc_pauses += 1
    gc.disable()
    try:
        yield
    finally:
        _gc_pauses -= 1
        if _gc_pauses == 0:
            gc.enable()


def canonical_hash(body: Any) -> str:
    """SHA-256 of the body with sorted keys and no spacing: equal JSON, equal hash."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def read_body(req: falcon.Request, max_body_bytes: int) -> bytes:
    """The request's body, refused (PayloadTooLarge) above ``max_body_bytes``."""
    # refuse by the declared length before reading a byte, and cap the read for bodies
    # without one (chunked) or that lie about it
    if req.content_length is not None and req.content_length > max_body_bytes:
        raise PayloadTooLarge(_too_large(max_body_bytes))
    data = _read_at_most(req, max_body_bytes + 1)
    if len(data) > max_body_bytes:
        raise PayloadTooLarge(_too_large(max_body_bytes))
    return data


def _json_or_none(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def parse_json(data: bytes) -> Any:
    """The body's JSON value; InputError if it is empty or not JSON."""
    if not data:
        raise InputError("body", "is empty; send the request as JSON")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InputError("body", f"is not valid JSON ({err})") from err


def _read_at_most(req: falcon.Request, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body, declared length or chunked."""
    if req.content_length is not None:
        return bytes(req.bounded_stream.read(min(limit, req.content_length)))
    # chunked: Falcon's bounded stream reads nothing without a length; the server's input
    # decodes the chunks, and may return fewer bytes than asked per read
    parts: list[bytes] = []
    received = 0
    while received < limit:
        part = req.stream.read(min(limit - received, 65536))
        if not part:
            break
        parts.append(part)
        received += len(part)
    return b"".join(parts)


def _too_large(limit: int) -> str:
    return f"body: larger than {limit} bytes; split the destinations over several requests"


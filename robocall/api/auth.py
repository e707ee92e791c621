"""Credentials and the per-key rate limit, applied before any resource runs.

Two kinds of credential, in two headers. An organization's API key (``x-credential-api-key``,
the B3 contract's header) manages that organization's calls. An operator key
(``x-robocall-operator-key``, made by ``robocall operator key create``) sets what the operator
sells and the switch carries — an organization's lines, pace and line rule — on the resources
that say ``audience = OPERATOR``. Neither kind opens the other's resources: a tenant key on an
operator's resource is a 403 that says so, and so is an operator key on a tenant's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon

from robocall.errors import AuthError, Forbidden, RateLimited
from robocall.store.access import Operator
from robocall.store.records import Organization

API_KEY_HEADER = "x-credential-api-key"
OPERATOR_KEY_HEADER = "x-robocall-operator-key"
OPERATOR = "operator"  # a resource's ``audience`` when only an operator key opens it


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to that many."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._refill_per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket; raise RateLimited when it is empty."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._refill_per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self._refill_per_second)
            raise RateLimited("too many requests for this API key; slow down", wait)
        self._buckets[key] = (tokens - 1.0, now)


@dataclass
class AuthMiddleware:
    """Resolves the request's credential before its resource runs; then rate limits it.

    Resources that set ``public = True`` (the OpenAPI document) need no key. Those with
    ``audience = OPERATOR`` take an operator key (``req.context.operator``); all others an
    organization's API key (``req.context.organization``). Keys are resolved against the
    store on every request, so a revoked key is refused by the next one.
    """

    organization_for_key: Callable[[str], Organization | None]
    operator_for_key: Callable[[str], Operator | None]
    limiter: RateLimiter

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        if getattr(resource, "audience", None) == OPERATOR:
            self._operator(req)
        else:
            self._tenant(req)

    def _tenant(self, req: falcon.Request) -> None:
        key = req.get_header(API_KEY_HEADER)
        if not key:
            if req.get_header(OPERATOR_KEY_HEADER):
                raise Forbidden(
                    "an operator key does not manage an organization's calls: "
                    f"send the organization's API key in the {API_KEY_HEADER} header"
                )
            raise AuthError(f"missing API key: send it in the {API_KEY_HEADER} header")
        organization = self.organization_for_key(key)
        if organization is None:
            raise AuthError("unknown API key")
        self.limiter.take(key)
        req.context.organization = organization

    def _operator(self, req: falcon.Request) -> None:
        key = req.get_header(OPERATOR_KEY_HEADER)
        if not key:
            if req.get_header(API_KEY_HEADER):
                raise Forbidden(
                    "this is the operator's: an organization's API key cannot use it; "
                    f"send an operator key in the {OPERATOR_KEY_HEADER} header"
                )
            raise AuthError(f"missing operator key: send it in the {OPERATOR_KEY_HEADER} header")
        operator = self.operator_for_key(key)
        if operator is None:
            raise AuthError("unknown operator key")
        self.limiter.take(key)
        req.context.operator = operator

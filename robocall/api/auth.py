"""API keys and the per-key rate limit, applied before any resource runs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon

from robocall.errors import AuthError, RateLimited
from robocall.store.records import Organization

API_KEY_HEADER = "x-credential-api-key"


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
    """Resolves ``x-credential-api-key`` to ``req.context.organization``; then rate limits.

    Resources that set ``public = True`` (the OpenAPI document) need no key.
    """

    organization_for_key: Callable[[str], Organization | None]
    limiter: RateLimiter

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        key = req.get_header(API_KEY_HEADER)
        if not key:
            raise AuthError(f"missing API key: send it in the {API_KEY_HEADER} header")
        organization = self.organization_for_key(key)
        if organization is None:
            raise AuthError("unknown API key")
        self.limiter.take(key)
        req.context.organization = organization

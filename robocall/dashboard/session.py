"""How a browser presents an organization's API key to the dashboard.

The person pastes the key once into the login form (``POST /login``); robocall checks it and
answers with a cookie holding it: ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no
other site's page sends it, so no cross-site request forgery), ``Secure`` whenever the
browser came over HTTPS (directly or through a proxy that says so in ``X-Forwarded-Proto``),
``Path=/``, for :data:`COOKIE_MAX_AGE_SECONDS`. Every page resolves the cookie's key again, so a
revoked key logs its browsers out at once and a restart logs nobody out. The key never appears
in a URL, so it never lands in an access log or the browser's history.
"""

from __future__ import annotations

from collections.abc import Callable

import falcon

from robocall.store.records import Organization

COOKIE_NAME = "robocall_key"
COOKIE_MAX_AGE_SECONDS = 8 * 3600
# An API key is short ASCII (``rk_`` + 43 URL-safe characters); refuse anything far larger
# before hashing it.
MAX_KEY_LENGTH = 200


class Sessions:
    """Turns the dashboard cookie into an organization, and sets or clears it."""

    def __init__(self, organization_for_key: Callable[[str], Organization | None]) -> None:
        self._organization_for_key = organization_for_key

    def organization(self, req: falcon.Request) -> Organization | None:
        """The organization whose key the browser's cookie holds, if it is a live key."""
        values = req.get_cookie_values(COOKIE_NAME) or []
        for key in values:
            organization = self.check(key)
            if organization is not None:
                return organization
        return None

    def check(self, key: str) -> Organization | None:
        """The organization of ``key`` as typed into the login form, if any."""
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        return self._organization_for_key(key)

    def log_in(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        resp.set_cookie(
            COOKIE_NAME,
            key.strip(),
            max_age=COOKIE_MAX_AGE_SECONDS,
            path="/",
            secure=_came_over_https(req),
            http_only=True,
            same_site="Strict",
        )

    def log_out(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.unset_cookie(COOKIE_NAME, path="/", same_site="Strict")


def _came_over_https(req: falcon.Request) -> bool:
    return req.scheme == "https" or req.forwarded_scheme == "https"

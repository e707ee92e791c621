"""The dashboard's pages: thin resources that read the store and the dispatcher, then render.

Each page belongs to the organization whose key the browser's cookie holds
(``robocall.dashboard.session``); a request of another organization is "not found", exactly as
``GET /v1/status`` answers it. The resources are ``public`` to the API's key middleware: they
authenticate by cookie, not by the ``x-credential-api-key`` header.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon
import jinja2

from robocall.api import views as api_views
from robocall.dashboard import views
from robocall.dashboard.session import Sessions
from robocall.dispatch.dispatcher import LineReport
from robocall.errors import InputError, NotFound
from robocall.store.records import Organization
from robocall.store.repo import Repo

# Statuses, step results and legs are shown as the API names them.
_WIRE_NAMES = {
    "call_status": views.call_status_name,
    "request_status": views.request_status_name,
    "leg_kind": views.leg_kind_name,
    "step_line": views.step_line,
}
RECENT_REQUESTS = 50
CALLS_PER_PAGE = 100


@dataclass
class Pages:
    """What every page needs: templates, sessions, the store, and the dispatcher's line counts."""

    templates: jinja2.Environment
    sessions: Sessions
    repo: Repo
    line_report: Callable[[str], LineReport | None]
    refresh_seconds: int

    def render(
        self, resp: falcon.Response, template: str, *, status: int = 200, **values: Any
    ) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_HTML
        # A page shows one organization's data: no shared cache may keep it.
        resp.set_header("Cache-Control", "no-store")
        resp.text = self.templates.get_template(template).render(
            refresh_seconds=self.refresh_seconds, **_WIRE_NAMES, **values
        )

    def organization_or_login(
        self, req: falcon.Request, resp: falcon.Response
    ) -> Organization | None:
        """The signed-in organization; else answer with a redirect to the login form."""
        organization = self.sessions.organization(req)
        if organization is None:
            _see_other(resp, "/login")
        return organization


class _Page:
    public = True  # authenticated by the dashboard cookie, not the API key header

    def __init__(self, pages: Pages) -> None:
        self.pages = pages


class LoginPage(_Page):
    """``GET /login``: the form; ``POST /login``: check the key, set the cookie, go to ``/``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.pages.sessions.organization(req) is not None:
            _see_other(resp, "/")
            return
        self.pages.render(resp, "login.html", error=None)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = req.get_media(default_when_empty={})
        key = form.get("key", "") if isinstance(form, dict) else ""
        organization = self.pages.sessions.check(key) if isinstance(key, str) else None
        if organization is None:
            self.pages.render(resp, "login.html", status=401, error="That API key is not valid.")
            return
        self.pages.sessions.log_in(req, resp, key)
        _see_other(resp, "/")


class LogoutAction(_Page):
    """``POST /logout``: forget the cookie."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.pages.sessions.log_out(req, resp)
        _see_other(resp, "/login")


class OverviewPage(_Page):
    """``GET /``: the organization's lines and its newest requests with their progress."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization = self.pages.organization_or_login(req, resp)
        if organization is None:
            return
        summaries = self.pages.repo.recent_requests(organization.id, limit=RECENT_REQUESTS)
        self.pages.render(
            resp,
            "overview.html",
            organization=organization,
            gauge=views.gauge(self.pages.line_report(organization.id)),
            requests=[
                (summary.request, views.progress(summary.counts, summary.request.total))
                for summary in summaries
            ],
        )


class RequestPage(_Page):
    """``GET /request?id=REQUEST_ID[&cursor=...]``: one request, a page of its calls, each
    call's step trace and channel uuids."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization = self.pages.organization_or_login(req, resp)
        if organization is None:
            return
        request_id = req.get_param("id") or ""
        try:
            cursor = req.get_param("cursor")
            after = api_views.decode_cursor(cursor) if cursor is not None else None
            if "\x00" in request_id:
                raise NotFound(request_id)
            page = self.pages.repo.request_status(
                organization.id, request_id, limit=CALLS_PER_PAGE, after_call_id=after
            )
        except (NotFound, InputError):
            self.pages.render(
                resp, "not_found.html", status=404, organization=organization,
                request_id=request_id,
            )
            return
        self.pages.render(
            resp,
            "request.html",
            organization=organization,
            request=page.request,
            progress=views.progress(page.counts, page.request.total),
            calls=page.calls,
            live=page.request.status in views.LIVE_REQUEST_STATUSES,
            next_cursor=(
                api_views.encode_cursor(page.next_after_id) if page.next_after_id else None
            ),
        )


def _see_other(resp: falcon.Response, location: str) -> None:
    resp.status = falcon.HTTP_303
    resp.location = location

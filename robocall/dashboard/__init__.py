"""The dashboard: server-rendered pages (jinja2 templates shipped in the package, no build
step) showing one organization's lines, requests and calls. See docs/dashboard.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
import jinja2

from robocall.dashboard.pages import LoginPage, LogoutAction, OverviewPage, Pages, RequestPage
from robocall.dashboard.session import Sessions
from robocall.dispatch.dispatcher import LineReport
from robocall.store.repo import Repo

DEFAULT_REFRESH_SECONDS = 5


def templates() -> jinja2.Environment:
    """The dashboard's templates, HTML-escaped by default (client text is shown on them)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("robocall.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def install(
    app: falcon.App[Any, Any],
    *,
    repo: Repo,
    line_report: Callable[[str], LineReport | None],
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
) -> None:
    """Add the dashboard's routes (``/``, ``/request``, ``/login``, ``/logout``) to ``app``."""
    pages = Pages(
        templates=templates(),
        sessions=Sessions(repo.organization_for_key),
        repo=repo,
        line_report=line_report,
        refresh_seconds=refresh_seconds,
    )
    app.add_route("/", OverviewPage(pages))
    app.add_route("/request", RequestPage(pages))
    app.add_route("/login", LoginPage(pages))
    app.add_route("/logout", LogoutAction(pages))

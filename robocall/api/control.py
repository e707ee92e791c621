"""The extensions a client controls its calls with — ``DELETE /v1/call/{requestId}`` (cancel),
``GET /v1/lines`` (the organization's lines) — and the operator's side of lines: ``GET
/v1/organizations``, ``GET``/``PUT /v1/organizations/{orgId}/lines``. Thin, as every resource.

An organization's lines are what the operator sold it and its trunk carries, and its pace
spends the switch's budget that every organization shares: a tenant reads them, only an
operator key (or ``robocall org set-lines``) changes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import falcon

from robocall.api import views
from robocall.api.auth import OPERATOR, OPERATOR_KEY_HEADER
from robocall.api.resources import check_request_id, parse_json, read_body
from robocall.api.schema import validate_body
from robocall.errors import Forbidden, NotFound
from robocall.flow.parse import parse_lines_change
from robocall.store.repo import Repo


class LineReport(Protocol):
    """One organization's lines as the dialer counts them now."""

    @property
    def lines(self) -> int: ...

    @property
    def robo(self) -> int: ...

    @property
    def other(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def free(self) -> int: ...


class LinesControl(Protocol):
    """What the API needs of the dialer (``robocall.dispatch.dispatcher.Dispatcher``)."""

    def report(self, organization_id: str) -> LineReport | None:
        """The organization's lines now, or None if the dialer does not know it yet."""

    def refresh_organizations(self) -> None:
        """Reload every organization's lines and pace from the store."""

    def wake(self, organization_id: str | None = None) -> None:
        """Dispatch again now."""


@dataclass
class CancelResource:
    """``DELETE /v1/call/{requestId}``: queued calls cancelled, live calls finish."""

    repo: Repo

    def on_delete(self, req: falcon.Request, resp: falcon.Response, request_id: str) -> None:
        check_request_id(request_id)
        org_id = req.context.organization.id
        self.repo.cancel_request(org_id, request_id)
        page = self.repo.request_status(org_id, request_id, limit=views.DEFAULT_PAGE)
        resp.media = views.status_body(page)


@dataclass
class LinesResource:
    """``GET /v1/lines``: the caller's organization's lines. ``PUT`` is the operator's (403).

    Without a dialer in this process (an API-only node, API tests) the answer comes from the
    store alone: the switch's counts (other apps, dials in flight) are then null.
    """

    repo: Repo
    control: LinesControl | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = lines_report(self.repo, self.control, req.context.organization.id)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise Forbidden(
            "an organization's lines, cps and line rule are set by the operator: "
            "`robocall org set-lines`, or PUT /v1/organizations/{orgId}/lines with an "
            f"operator key in {OPERATOR_KEY_HEADER}"
        )


@dataclass
class OrganizationsResource:
    """``GET /v1/organizations`` (operator): every organization with its lines and line rule."""

    repo: Repo
    audience = OPERATOR

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "organizations": [
                {
                    "id": org.id,
                    "name": org.name,
                    "maxConcurrentCalls": org.max_concurrent_calls,
                    "cps": org.cps,
                    "lineRule": {"variable": org.line_variable, "value": org.line_value},
                }
                for org in self.repo.list_organizations()
            ]
        }


@dataclass
class OrganizationLinesResource:
    """``GET``/``PUT /v1/organizations/{orgId}/lines`` (operator): one organization's lines;
    a change of count, pace or line rule applies at once."""

    repo: Repo
    max_body_bytes: int
    control: LinesControl | None = None
    audience = OPERATOR

    def on_get(self, req: falcon.Request, resp: falcon.Response, org_id: str) -> None:
        resp.media = lines_report(self.repo, self.control, org_id)

    def on_put(self, req: falcon.Request, resp: falcon.Response, org_id: str) -> None:
        raw = read_body(req, self.max_body_bytes)
        body = parse_json(raw)
        validate_body("LinesUpdate", body, raw)
        self.repo.set_organization_lines(org_id, parse_lines_change(body))
        if self.control is not None:
            self.control.refresh_organizations()
            self.control.wake(org_id)
        resp.media = lines_report(self.repo, self.control, org_id)


def lines_report(repo: Repo, control: LinesControl | None, org_id: str) -> dict[str, Any]:
    """The ``Lines`` answer for ``org_id``: the dialer's counts if it runs here, else the
    store's (NotFound if there is no such organization)."""
    organization = repo.get_organization(org_id)
    if organization is None:
        raise NotFound(f"no organization {org_id}")
    counts = repo.line_counts(org_id)
    report = control.report(org_id) if control is not None else None
    return views.lines_body(organization, counts, report)

"""The extensions a client controls its calls with: ``DELETE /v1/call/{requestId}`` (cancel) and
``GET``/``PUT /v1/lines`` (the organization's lines). Thin, as every resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import falcon

from robocall.api import contract, views
from robocall.api.resources import check_request_id, parse_json, read_body
from robocall.api.schema import validate_body
from robocall.errors import NotFound
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
        resp.media = contract.status_body(page)


@dataclass
class LinesResource:
    """``GET``/``PUT /v1/lines``: the caller's organization's lines; a change applies at once.

    Without a dialer in this process (an API-only node, API tests) the answer comes from the
    store alone: the switch's counts (other apps, dials in flight) are then null.
    """

    repo: Repo
    max_body_bytes: int
    control: LinesControl | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._report(req.context.organization.id)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = read_body(req, self.max_body_bytes)
        body = parse_json(raw)
        validate_body("LinesUpdate", body, raw)
        org_id = req.context.organization.id
        self.repo.set_organization_lines(org_id, parse_lines_change(body))
        if self.control is not None:
            self.control.refresh_organizations()
            self.control.wake(org_id)
        resp.media = self._report(org_id)

    def _report(self, org_id: str) -> dict[str, Any]:
        organization = self.repo.get_organization(org_id)
        if organization is None:
            raise NotFound(f"no organization {org_id}")
        counts = self.repo.line_counts(org_id)
        report = self.control.report(org_id) if self.control is not None else None
        return views.lines_body(organization, counts, report)

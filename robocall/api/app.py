"""The Falcon application factory: routes, authentication, error mapping. No globals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon

from robocall.api import errors
from robocall.api.auth import AuthMiddleware, RateLimiter
from robocall.api.control import (
    CancelResource,
    LinesControl,
    LinesResource,
    OrganizationLinesResource,
    OrganizationsResource,
)
from robocall.api.media import PromptAudioResource, RecordingResource
from robocall.api.resources import CallResource, OpenApiResource, StatusResource
from robocall.api.webhooks import DeliveriesResource
from robocall.calls.webhook_targets import TargetPolicy
from robocall.store.repo import Repo


def create_app(
    *,
    repo: Repo,
    languages: frozenset[str],
    max_destinations: int,
    max_body_bytes: int,
    limiter: RateLimiter,
    on_request_stored: Callable[[str], None] = lambda org_id: None,
    recordings_dir: Path | None = None,
    prompt_lookup: Callable[[str], Path | None] | None = None,
    lines_control: LinesControl | None = None,
    webhook_targets: TargetPolicy | None = None,
) -> falcon.App[Any, Any]:
    """A WSGI app serving the Robo call API over ``repo``.

    ``languages`` are those the TTS engines speak (``lang`` is checked against them);
    ``limiter`` holds the per-key request budget; ``on_request_stored(org_id)`` is called once
    a new request is committed (the dispatcher's wake-up). Recordings are served from
    ``recordings_dir`` and rendered prompts through ``prompt_lookup``, when given.
    ``lines_control`` is the dialer of this process, if it dials (``/v1/lines`` reads its
    counts and tells it of a change); without one ``/v1/lines`` answers from the store.
    A ``callbackUrl`` is vetted by ``webhook_targets`` (public addresses only by default).
    """
    targets = webhook_targets if webhook_targets is not None else TargetPolicy()
    app = falcon.App(
        middleware=[
            AuthMiddleware(
                organization_for_key=repo.organization_for_key,
                operator_for_key=repo.operator_for_key,
                limiter=limiter,
            )
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route(
        "/v1/call",
        CallResource(
            repo=repo,
            languages=languages,
            max_destinations=max_destinations,
            max_body_bytes=max_body_bytes,
            on_request_stored=on_request_stored,
            vet_callback_url=targets.vet_url,
        ),
    )
    app.add_route("/v1/status/{request_id}", StatusResource(repo=repo))
    app.add_route("/v1/call/{request_id}", CancelResource(repo=repo))
    app.add_route("/v1/lines", LinesResource(repo=repo, control=lines_control))
    app.add_route("/v1/organizations", OrganizationsResource(repo=repo))
    app.add_route(
        "/v1/organizations/{org_id}/lines",
        OrganizationLinesResource(
            repo=repo, max_body_bytes=max_body_bytes, control=lines_control
        ),
    )
    app.add_route("/v1/openapi.json", OpenApiResource())
    app.add_route("/v1/webhooks/deliveries", DeliveriesResource(repo=repo))
    if recordings_dir is not None:
        app.add_route(
            "/v1/recordings/{call_id}",
            RecordingResource(call_belongs_to=repo.call_belongs_to, recordings_dir=recordings_dir),
        )
    if prompt_lookup is not None:
        app.add_route("/v1/tts/{name}", PromptAudioResource(lookup=prompt_lookup))
    errors.install(app)
    return app

"""A real webhook receiver for tests: a gevent WSGI server on 127.0.0.1, port 0.

It records every POST (headers and body as received) and answers as scripted: a status per
request (``answer``), so a test can make it fail N times, fail one kind of event, or redirect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer

# A bound on waiting for deliveries, so a broken build fails instead of hanging; never a
# measure of speed.
SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class Received:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_verify() -> Callable[[str, dict[str, str], bytes], bool]:
    """The ``verify`` function of docs/webhooks.md, run as a receiver would copy it."""
    text = DOCS.read_text("utf-8")
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOCS), "exec"), namespace)
    verify: Callable[[str, dict[str, str], bytes], bool] = namespace["verify"]
    return verify


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """docs/webhooks.md's check over headers as received (the docs name them capitalized)."""
    named = {"-".join(p.capitalize() for p in k.split("-")): v for k, v in headers.items()}
    return documented_verify()(secret, named, body)


@dataclass
class Receiver:
    """``answer(received) -> (status, headers)``; 204 to everything by default."""

    answer: Callable[[Received], tuple[int, dict[str, str]]] = lambda received: (204, {})
    received: list[Received] = field(default_factory=list)
    _server: WSGIServer | None = None

    def start(self) -> Receiver:
        self._server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.address[:2]
        return f"http://{host}:{port}/hooks/robocall"

    def events(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """Every event body received (accepted or not), in arrival order."""
        bodies = [r.event for r in self.received]
        return [b for b in bodies if request_id is None or b["requestId"] == request_id]

    def wait_for(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` holds (bounded, so a broken build fails)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {self.events()}")
            gevent.sleep(0.02)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        received = Received(environ["PATH_INFO"], headers, body)
        self.received.append(received)
        status, extra = self.answer(received)
        start_response(f"{status} X", list(extra.items()))
        return [b"" if status < 300 else b"receiver says no"]

"""The data of ``robocall demo``: a request, the callees who answer it, what each call must do.

``request.json`` is the seed's example request (its two destinations unchanged) plus four more
destinations; ``callees.json`` scripts FakeSwitch's far ends so that, between them, the calls
show every path of the seed's flow: press 1 (the nested gather, then its default play), press 0
(transfer to extension 1000), an unknown key and silence (both the default branch: transfer),
busy, and no answer. Both files work on their own too::

    robocall serve --switch fake --callees robocall/demo/callees.json
    robocall submit robocall/demo/request.json --key KEY
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from robocall.api import contract
from robocall.calls.prompts import Prompts
from robocall.flow.compile import compile_flow
from robocall.flow.parse import parse_call_flow
from robocall.flow.status import CallStatus, DialResult
from robocall.testing import CalleeBook
from robocall.tts.cache import TtsCache

_COMPLETED = contract.CALL_STATUS[CallStatus.COMPLETED]
_FAILED = contract.CALL_STATUS[CallStatus.FAILED]
_ANSWERED = contract.DIAL_RESULT[DialResult.ANSWERED]
# destination -> (status, digits pressed, transfer status), as robocall.cli.display shows them.
EXPECTED: dict[str, tuple[str, str, str]] = {
    "+84917660247": (_COMPLETED, "1", "-"),
    "+84912860330": (_COMPLETED, "0", _ANSWERED),
    "+84913000003": (_COMPLETED, "9", _ANSWERED),
    "+84913000004": (_COMPLETED, "-", _ANSWERED),
    "+84913000005": (_FAILED, "-", "-"),
    "+84913000006": (_FAILED, "-", "-"),
}
# What each destination shows the user, in the same order.
STORIES: dict[str, str] = {
    "+84917660247": "presses 1: a nested gather, silence, its default message",
    "+84912860330": "presses 0: transferred to extension 1000",
    "+84913000003": "presses 9 (no such branch): the default branch transfers",
    "+84913000004": "stays silent: three tries, then the default branch transfers",
    "+84913000005": "is busy",
    "+84913000006": "never answers",
}


def _read_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__name__).joinpath(name).read_text())
    return data


def request_body(request_id: str) -> dict[str, Any]:
    """The demo's /v1/call body under ``request_id``."""
    body = _read_json("request.json")
    body["requestId"] = request_id
    return body


def callee_book() -> CalleeBook:
    """FakeSwitch's scripted callees for the demo's destinations (and extension 1000)."""
    return CalleeBook.from_dict(_read_json("callees.json"))


def render_ahead(cache: TtsCache, body: dict[str, Any], languages: Iterable[str]) -> int:
    """Render every message of ``body`` for each destination now; how many were asked for.

    Scripted callees press keys at fixed times after they answer; on a time-scaled FakeSwitch
    a render of a second during the call would shift the flow past them. The runner renders
    during the ring; this renders before anything is dialled.
    """
    program = compile_flow(parse_call_flow(body["callFlow"], languages=languages))
    prompts = Prompts(cache)
    rendered = 0
    for destination in body["destinations"]:
        properties = {k: str(v) for k, v in destination.get("properties", {}).items()}
        for upcoming in program.messages_in_order():
            prompts.audio(upcoming.message, properties)
            rendered += 1
    return rendered


def mismatches(rows: Iterable[tuple[str, str, str, str, str, str]]) -> list[str]:
    """What differs between the calls' table rows and :data:`EXPECTED`, one line each."""
    seen: dict[str, tuple[str, str, str]] = {row[0]: (row[1], row[2], row[3]) for row in rows}
    problems = []
    for destination, expected in EXPECTED.items():
        got = seen.get(destination)
        if got != expected:
            problems.append(f"{destination}: expected {expected}, got {got}")
    return problems

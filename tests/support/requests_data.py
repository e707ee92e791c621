"""Request bodies for tests: the seed's own example, and small variations of it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SEED_EXAMPLE = Path(__file__).with_name("seed_example_request.json")


def seed_example() -> dict[str, Any]:
    """The B3 seed's example request body, exactly as published."""
    body: dict[str, Any] = json.loads(SEED_EXAMPLE.read_text())
    return body


def seed_with(request_id: str, destinations: int | None = None) -> dict[str, Any]:
    """The seed example under another requestId, optionally with ``destinations`` numbers."""
    body = seed_example()
    body["requestId"] = request_id
    if destinations is not None:
        template = body["destinations"][0]
        body["destinations"] = [
            {**copy.deepcopy(template), "phone": f"+8491{index:07d}"}
            for index in range(destinations)
        ]
    return body


def nested_flow(depth: int) -> dict[str, Any]:
    """A callFlow whose gathers nest ``depth`` levels deep (depth 1: no gather)."""
    flow: dict[str, Any] = {"steps": [{"name": "play", "message": {"msg": "bottom"}}]}
    for _ in range(depth - 1):
        flow = {"steps": [{"name": "gather", "message": {"msg": "press 1"},
                           "branches": [{"digit": "1", "callFlow": flow}]}]}
    return flow

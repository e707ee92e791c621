"""The README's API examples, run against the real service over HTTP, so the README cannot drift
from what the server answers.

The service runs over FakeSwitch's default world of people (what ``make run`` dials), so the
example request goes as the README says: the callee presses 0 and is put through to extension
1000, and the call ends ``completed`` with a play, a gather and a transfer step. The documented
JSON must have the keys the server returns, nested the same way; for the finished call, every
value too except those that differ on every run (uuids, times). When this test fails after a
change to the status format, paste the response it prints into the README.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from robocall.testing import CalleeBook
from tests.support.service import RunningService, ServiceStarter

pytestmark = pytest.mark.usefixtures("repo")

README = Path(__file__).resolve().parents[2] / "README.md"
# Values of a finished call that differ on every run.
VOLATILE = frozenset({"uuid", "answeredAt", "durationSeconds"})
# Objects whose keys are data (a count per status), not part of the format.
MAPS = frozenset({"counts"})


def code_blocks(language: str) -> list[str]:
    """The README's fenced code blocks in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)


def posted_body(block: str) -> dict[str, Any]:
    """The JSON body of a ``curl ... -d '...'`` example."""
    body = block.split("-d '", 1)[1]
    return dict(json.loads(body[: body.index("'")]))


def example(marker: str, language: str = "sh") -> str:
    """The one code block holding ``marker``."""
    [block] = [b for b in code_blocks(language) if marker in b]
    return block


def shape(value: Any, key: str = "") -> Any:
    """The keys of ``value``, nested as they are (lists element by element), without values."""
    if isinstance(value, dict):
        return "an object" if key in MAPS else {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return None


def keys(status: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The keys of a request's status, and of each of its calls (a JSON object's keys have no
    order: the streamed status sends ``details`` last, the POST answer does not)."""
    return sorted(status), [sorted(detail) for detail in status["details"]]


def without_volatile(value: Any) -> Any:
    """``value`` with the values that differ on every run left out."""
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


def documented(name: str) -> dict[str, Any]:
    """A JSON example of the README: ``status`` (a request) or ``call`` (one finished call; the
    README's other examples are single steps)."""
    blocks = [json.loads(block) for block in code_blocks("json")]
    wanted = "details" if name == "status" else "callFlowSteps"
    [found] = [b for b in blocks if wanted in b]
    return dict(found)


@pytest.fixture
def running(start_service: ServiceStarter) -> RunningService:
    return start_service(callee_book=CalleeBook.people(), lines=6, cps=5.0)


def test_the_example_request_answers_and_ends_as_the_readme_shows(running: RunningService):
    # given the README's example request, posted as written
    body = posted_body(example('"requestId": "request_10"'))
    running.warm_prompts(body)
    response = running.post_call(body)
    # then the answer, like the status read back, has the keys the README documents for a
    # request and for each of its calls (the call may be queued or dialled by now)
    assert response.status_code == 200, response.text
    for status in (response.json(), running.status("request_10")):
        assert keys(status) == keys(documented("status")), json.dumps(status)

    # when the default world's callee has done what the README says
    final = running.wait_until_final("request_10")
    # then the request completed, its call ran a play, a gather with a key and a transfer
    assert final["status"] == "completed"
    [call] = final["details"]
    assert [step["stepName"] for step in call["callFlowSteps"]] == ["play", "gather", "transfer"]
    # and the README's finished call has the server's keys, and its values but for those
    # that differ on every run
    readme_call = documented("call")
    real = json.dumps(call)
    assert shape(call) == shape(readme_call), f"the server answers: {real}"
    assert without_volatile(call) == without_volatile(readme_call), f"the server answers: {real}"


def test_the_error_example_is_the_servers_answer(running: RunningService):
    # given the README's example of a bad request, and the answer it documents
    block = example('"requestId": "r2"')
    expected = json.loads(block.split("\n# ", 1)[1])
    # when it is posted
    response = running.post_call(posted_body(block))
    # then the server answers exactly that
    assert response.status_code == 400
    assert response.json() == expected

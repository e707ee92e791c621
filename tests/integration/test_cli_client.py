"""``robocall submit`` and ``robocall status`` against the whole service running over HTTP.

The commands run through ``robocall.cli.main`` in this process (the server's greenlets serve
them on the same hub); what they print and return is what a user sees.
"""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path

import pytest

from robocall.cli import (
    EXIT_AUTH,
    EXIT_NOT_FOUND,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from robocall.testing import Callee, Press
from tests.support.requests_data import seed_with
from tests.support.service import RunningService, ServiceStarter

pytestmark = pytest.mark.usefixtures("repo")

PRESSES_1 = "+6581000001"
PRESSES_0 = "+6581000002"
BUSY = "+6581000003"
CALLEES = {
    PRESSES_1: Callee(presses=(Press(1000, "1", on_prompt=1),)),
    PRESSES_0: Callee(presses=(Press(1000, "0", on_prompt=1),)),
    BUSY: Callee(outcome="busy", ring=False),
    "1000": Callee(answer_after_ms=500, hangup_after_ms=2000),
}


def _body(request_id: str) -> dict:
    body = seed_with(request_id, destinations=3)
    for destination, number in zip(body["destinations"], [PRESSES_1, PRESSES_0, BUSY],
                                   strict=True):
        destination["phone"] = number
    return body


def _write(tmp_path: Path, body: object, name: str = "request.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return path


def _flags(running: RunningService, key: str | None = None) -> list[str]:
    return ["--url", running.base_url, "--key", key or running.key]


def _rows(output: str) -> dict[str, list[str]]:
    """The table's rows by destination: its cells, split on the table's bars."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0].startswith("+"):
            rows[cells[0]] = cells
    return rows


@pytest.fixture
def running(start_service: ServiceStarter) -> RunningService:
    return start_service(CALLEES, lines=6)


def test_submit_watches_the_calls_to_the_end_then_prints_one_row_per_call(
    running, tmp_path, capsys
):
    # given the seed request to three scripted callees, in a file
    body = _body("cli-submit")
    running.warm_prompts(body)
    path = _write(tmp_path, body)
    # when it is submitted with the command line
    code = main(["submit", str(path), *_flags(running)])
    # then the command returns once every call is final, and its table says what each did
    output = capsys.readouterr().out
    assert code == 0
    assert running.status("cli-submit")["status"] == "completed"
    rows = _rows(output)
    assert rows[PRESSES_1][1:4] == ["completed", "1", "-"]
    assert rows[PRESSES_0][1:4] == ["completed", "0", "answered"]
    assert rows[BUSY][1:4] == ["failed", "-", "-"]
    assert rows[BUSY][5] == "USER_BUSY"
    assert rows[PRESSES_0][4].endswith(" s")
    assert "cli-submit completed: 3 calls (completed 2 · failed 1)" in output


def test_status_watch_follows_a_request_submitted_without_watching(running, tmp_path, capsys):
    # given a request submitted with --no-watch
    body = _body("cli-status")
    running.warm_prompts(body)
    assert main(["submit", str(_write(tmp_path, body)), "--no-watch", *_flags(running)]) == 0
    submitted = capsys.readouterr().out
    assert "submitted cli-status: 3 calls" in submitted
    assert "robocall status cli-status --watch" in submitted
    # when its status is watched
    code = main(["status", "cli-status", "--watch", *_flags(running)])
    # then the watch ends with the request final and every call in the table
    output = capsys.readouterr().out
    assert code == 0
    assert running.status("cli-status")["status"] == "completed"
    assert set(_rows(output)) == {PRESSES_1, PRESSES_0, BUSY}
    # and, its output not being a terminal, it printed a line per change up to the final one
    progress = output[: output.index("┏")].splitlines()
    assert progress[-1].startswith("cli-status completed: 3 calls")
    assert all(line.startswith("cli-status ") for line in progress)
    assert all(before != after for before, after in itertools.pairwise(progress))
    assert "cli-status completed: 3 calls" in output


def test_status_without_watch_shows_the_request_as_it_is_now(running, capsys):
    # given a request that has ended
    body = _body("cli-snapshot")
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200
    running.wait_until_final("cli-snapshot")
    # when its status is read once, with a table of two rows
    code = main(["status", "cli-snapshot", "--rows", "2", *_flags(running)])
    # then it shows the first two calls and says how many more there are
    output = capsys.readouterr().out
    assert code == 0
    assert list(_rows(output)) == [PRESSES_1, PRESSES_0]
    assert "1 more calls (--rows 0 shows all)" in output
    assert "cli-snapshot completed: 3 calls (completed 2 · failed 1)" in output


def test_a_file_that_is_not_json_is_refused_naming_the_place(running, tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"requestId": "x",\n  "destinations": [}\n')
    code = main(["submit", str(path), *_flags(running)])
    error = capsys.readouterr().err
    assert code == EXIT_REJECTED
    assert f"{path}: is not JSON" in error
    assert "line 2 column" in error


@pytest.mark.parametrize(
    ("content", "problem"),
    [("[1, 2]", "must hold one JSON object"), ('{"destinations": []}', "requestId: is required")],
)
def test_a_file_without_a_request_object_is_refused(running, tmp_path, capsys, content, problem):
    path = tmp_path / "odd.json"
    path.write_text(content)
    assert main(["submit", str(path), *_flags(running)]) == EXIT_REJECTED
    assert problem in capsys.readouterr().err


def test_a_missing_file_is_refused(running, tmp_path, capsys):
    assert main(["submit", str(tmp_path / "nope.json"), *_flags(running)]) == EXIT_REJECTED
    assert "nope.json: cannot read it" in capsys.readouterr().err


def test_the_servers_400_message_is_printed(running, tmp_path, capsys):
    # given a request whose flow transfers to nowhere the contract allows
    body = _body("cli-bad-flow")
    body["callFlow"]["steps"] = [{"name": "transfer", "destination": "Moon:42"}]
    code = main(["submit", str(_write(tmp_path, body)), *_flags(running)])
    error = capsys.readouterr().err
    assert code == EXIT_REJECTED
    assert "robocall: refused: " in error
    assert "callFlow.steps[0].destination" in error
    assert running.get("/v1/status/cli-bad-flow").status_code == 404


def test_a_wrong_key_is_refused(running, tmp_path, capsys):
    path = _write(tmp_path, _body("cli-bad-key"))
    assert main(["submit", str(path), *_flags(running, key="rk_not-a-key")]) == EXIT_AUTH
    assert "API key refused" in capsys.readouterr().err


def test_an_unknown_request_is_not_found(running, capsys):
    assert main(["status", "no-such-request", *_flags(running)]) == EXIT_NOT_FOUND
    assert "not found" in capsys.readouterr().err


def test_no_key_at_all_is_a_usage_error(running, monkeypatch, capsys):
    monkeypatch.delenv("ROBOCALL_API_KEY", raising=False)
    assert main(["status", "x", "--url", running.base_url]) == EXIT_USAGE
    assert "pass --key KEY or set ROBOCALL_API_KEY" in capsys.readouterr().err


def test_the_key_and_url_may_come_from_the_environment(running, monkeypatch, capsys):
    monkeypatch.setenv("ROBOCALL_URL", running.base_url)
    monkeypatch.setenv("ROBOCALL_API_KEY", running.key)
    assert main(["status", "no-such-request"]) == EXIT_NOT_FOUND


def test_a_server_that_is_down_is_named(capsys):
    # given a port of 127.0.0.1 that nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code = main(["status", "any", "--url", url, "--key", "rk_x"])
    error = capsys.readouterr().err
    assert code == EXIT_UNREACHABLE
    assert f"no robocall API at {url}" in error
    assert "refused" in error.lower()

"""One robocall over two real FreeSWITCH processes on one machine (marker `lab`, docs/pool.md).

Needs ROBOCALL_LAB_ESL and ROBOCALL_LAB_ESL2 (host:port:password of two lab instances,
scripts/lab_configure.py --instance 1 and 2); skipped without the second. Each instance's
``robocall`` gateway leads to its own scripted callees, so robocall dials through the default
template ``sofia/gateway/robocall/{number}`` and a call placed on either switch meets the same
callee. The stop test also needs ROBOCALL_LAB_STOP2 and ROBOCALL_LAB_START2: the shell commands
that stop and start the second instance (it is left running).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pytest

from robocall.esl.client import EslClient
from robocall.esl.commands import ROBOCALL_EVENTS
from robocall.esl.protocol import Event
from tests.lab.conftest import LabSwitch
from tests.lab.test_calls_lab import (
    BUSY,
    HANGS_UP_AFTER_1S,
    NO_ANSWER,
    NUMBERS,
    PRESSES_0,
    PRESSES_1,
    REJECTS,
    SILENT,
    LabService,
    lab_settings,
)
from tests.support.requests_data import seed_with
from tests.support.service import step_rows

pytestmark = pytest.mark.lab

# What each seed number's call ends as, on either switch (tests/lab/test_calls_lab.py has the
# reasons): status, hangup cause (None: not checked), the step rows (None: only the last).
SEED_OUTCOMES: dict[str, tuple[str, str | None, list[tuple[str, ...]] | None]] = {
    PRESSES_1: ("completed", "NORMAL_CLEARING", [
        ("play", "sucess_ok", "ongoing", "", ""), ("gather", "sucess_ok", "ongoing", "1", ""),
        ("gather", "sucess_ok", "ongoing", "1", ""), ("play", "sucess_ok", "ended", "", "")]),
    PRESSES_0: ("completed", None, [
        ("play", "sucess_ok", "ongoing", "", ""), ("gather", "sucess_ok", "ongoing", "0", ""),
        ("transfer", "sucess_ok", "ended", "", "answered")]),
    SILENT: ("completed", None, [
        ("play", "sucess_ok", "ongoing", "", ""), ("gather", "error_no_input", "ongoing", "", ""),
        ("transfer", "sucess_ok", "ended", "", "answered")]),
    BUSY: ("failed", "USER_BUSY", [("play", "error_not_answered", "ended", "", "")]),
    NO_ANSWER: ("failed", "NO_ANSWER", [("play", "error_not_answered", "ended", "", "")]),
    REJECTS: ("failed", "CALL_REJECTED", [("play", "error_not_answered", "ended", "", "")]),
    HANGS_UP_AFTER_1S: ("completed", "NORMAL_CLEARING", None),
}


@dataclass(frozen=True)
class LabPool:
    first: LabSwitch
    second: LabSwitch
    stop_second: str = ""
    start_second: str = ""

    def url(self) -> str:
        return ",".join(
            f"esl://:{switch.password}@{switch.host}:{switch.port}#{name}"
            for name, switch in (("lab1", self.first), ("lab2", self.second))
        )


def _lab_switch(variable: str) -> LabSwitch | None:
    setting = os.environ.get(variable, "")
    if not setting:
        return None
    host, port_text, password = setting.split(":", 2)
    switch = LabSwitch(host, int(port_text), password)
    try:
        socket.create_connection((switch.host, switch.port), timeout=3).close()
    except OSError as err:
        pytest.fail(f"{variable}={host}:{port_text} is set but unreachable: {err}", pytrace=False)
    return switch


@pytest.fixture(scope="module")
def lab_pool() -> LabPool:
    """Two configured lab switches, both reachable; skip when the second is not configured."""
    first = _lab_switch("ROBOCALL_LAB_ESL")
    second = _lab_switch("ROBOCALL_LAB_ESL2")
    if first is None or second is None:
        pytest.skip("no two lab FreeSWITCHes: set ROBOCALL_LAB_ESL and ROBOCALL_LAB_ESL2")
    return LabPool(first, second, os.environ.get("ROBOCALL_LAB_STOP2", ""),
                   os.environ.get("ROBOCALL_LAB_START2", ""))


def pool_service(pool: LabPool, data_dir: Path, lines: int, **overrides: Any) -> LabService:
    settings = lab_settings(pool.first, data_dir, switch=pool.url(),
                            dial_template="sofia/gateway/{gateway}/{number}", **overrides)
    return LabService(settings, lines)


def test_the_seed_scenarios_pass_on_both_switches(
    lab_pool: LabPool, tmp_path: Path
) -> None:
    # given robocall over both lab switches, with lines for two seed requests at once
    lab = pool_service(lab_pool, tmp_path, lines=2 * len(NUMBERS))
    try:
        bodies = []
        for index in range(2):
            body = seed_with(f"lab-pool-{index}-{secrets.token_hex(3)}",
                             destinations=len(NUMBERS))
            for destination, number in zip(body["destinations"], NUMBERS, strict=True):
                destination["phone"] = number
            bodies.append(body)
        # when the seed example is posted twice
        run = lab.run(bodies)
    finally:
        lab.stop()
    # then each request ends as the seed does on one switch
    placed: dict[str, set[str]] = {}
    for final in run.finals.values():
        assert final["counts"] == {"completed": 4, "failed": 3}, final["counts"]
        for detail in final["details"]:
            status, cause, steps = SEED_OUTCOMES[detail["destination"]]
            assert detail["status"] == status, detail
            if cause is not None:
                assert detail["hangupCause"] == cause, detail
            rows = step_rows(detail)
            assert rows == steps if steps is not None else rows[-1][1:3] == (
                "error_hangup", "ended"), (detail["destination"], rows)
            # the call and its legs name the switch they live on
            assert {leg["switch"] for leg in detail["monitorData"]} <= {detail["switch"]}
            placed.setdefault(detail["switch"], set()).add(detail["destination"])
    # and the calls were spread over both switches
    assert set(placed) == {"lab1", "lab2"}
    assert all(len(numbers) >= 3 for numbers in placed.values()), placed
    # and every reported leg was a real channel (on its own switch) while the calls ran
    for final in run.finals.values():
        for detail in final["details"]:
            if detail["destination"] in (BUSY, REJECTS):
                continue  # those legs live a few ms
            for leg in detail["monitorData"]:
                assert leg["uuid"] in run.live_uuids, (detail["destination"], leg)


# FreeSWITCH's default timer tick: the resolution of Event-Date-Timestamp (LineWatch).
SWITCH_TICK_US = 20_000


@dataclass
class LineWatch:
    """An organization's channels on each switch, from each switch's own events (not
    robocall's), timed by the switch's own clock (Event-Date-Timestamp: both lab switches run
    on one machine, so their clocks are one): each channel holds a line from its
    CHANNEL_CREATE to its CHANNEL_HANGUP. The most lines in use at once is found afterwards
    from these spans, so no event's delivery delay to this watcher can blur it.

    FreeSWITCH 1.11.1 stamps an event with its timer thread's last tick, not the time now
    (``switch_micro_time_now`` returns ``runtime.timestamp``, a 20 ms tick by default), and
    each switch ticks on its own grid: an event happened within one tick after its stamp. A
    line freed on one switch and taken on the other within one tick can carry stamps in the
    wrong order (the lab saw a create stamped 1.8 ms before the hangup robocall had waited
    for). So two spans count as overlapping only when they certainly did: a start is taken at
    the latest instant it may have happened (its stamp plus a tick), an end at its stamp."""

    org_id: str
    opened: dict[str, int] = field(default_factory=dict)  # channel uuid -> created (µs)
    spans: list[tuple[int, int]] = field(default_factory=list)
    legs_per_call: dict[str, set[str]] = field(default_factory=dict)

    def listener(self, name: str) -> Any:
        def on_event(event: Event) -> None:
            headers = event.headers
            if headers.get("variable_accountcode") != self.org_id:
                return
            unique_id = headers.get("Unique-ID", "")
            at = int(headers.get("Event-Date-Timestamp", "0"))
            if event.name == "CHANNEL_CREATE":
                self.opened[unique_id] = at
                call_id = headers.get("variable_robocall_call_id", "")
                self.legs_per_call.setdefault(call_id, set()).add(unique_id)
            elif event.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                created = self.opened.pop(unique_id, None)
                if created is not None:
                    self.spans.append((created, at))

        return on_event

    def switch_gone(self, at_us: int) -> None:
        """A switch went down: channels with no hangup seen ended by then at the latest."""
        for created in self.opened.values():
            self.spans.append((created, at_us))
        self.opened.clear()

    @property
    def most(self) -> int:
        """The most lines in use at one instant (a line freed and taken at the same
        microsecond is not counted twice)."""
        points = sorted([(end, -1) for _, end in self.spans]
                        + [(start + SWITCH_TICK_US, 1) for start, _ in self.spans])
        in_use = most = 0
        for _, step in points:
            in_use += step
            most = max(most, in_use)
        return most


@pytest.fixture
def watchers(lab_pool: LabPool) -> Iterator[dict[str, EslClient]]:
    clients = {
        name: EslClient(switch.host, switch.port, switch.password, events=ROBOCALL_EVENTS)
        for name, switch in (("lab1", lab_pool.first), ("lab2", lab_pool.second))
    }
    for client in clients.values():
        client.start()
        client.wait_connected(10)
    yield clients
    for client in clients.values():
        client.close()


def _run_shell(command: str) -> None:
    subprocess.run(["sh", "-c", command], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _wait_port(switch: LabSwitch, up: bool, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection((switch.host, switch.port), timeout=1).close()
            if up:
                return
        except OSError:
            if not up:
                return
        gevent.sleep(0.5)
    raise AssertionError(f"{switch.host}:{switch.port} did not go {'up' if up else 'down'}")


def test_stopping_one_switch_mid_run_keeps_every_promise(
    lab_pool: LabPool, watchers: dict[str, EslClient], tmp_path: Path
) -> None:
    if not (lab_pool.stop_second and lab_pool.start_second):
        pytest.skip("set ROBOCALL_LAB_STOP2 and ROBOCALL_LAB_START2 to stop the second switch")
    lines = 4
    lab = pool_service(lab_pool, tmp_path, lines=lines)
    watch = LineWatch(lab.org_id)
    for name, client in watchers.items():
        client.add_event_listener(watch.listener(name))
    calls = 60
    body = {
        "requestId": f"lab-pool-stop-{secrets.token_hex(3)}",
        # ..99 answers and stays silent; the transfer to extension 1000 talks 5 s, then ends
        "destinations": [{"phone": f"+65800{i:03d}99", "caller": "+6582674904"}
                         for i in range(calls)],
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }
    stopped = restarted = False
    try:
        lab_post = gevent.spawn(lab.run, [body])
        # when calls live on lab2, lab2 is stopped (its calls hang up with it)
        _wait_until(lambda: _live_on(lab, body, "lab2") >= 1, "a call live on lab2")
        _run_shell(lab_pool.stop_second)
        stopped = True
        _wait_port(lab_pool.second, up=False)
        watch.switch_gone(int(time.time() * 1_000_000))
        placed_before = _placed(lab, body)
        # then dialling goes on on lab1
        _wait_until(lambda: _placed(lab, body).get("lab1", 0) > placed_before.get("lab1", 0),
                    "calls placed on lab1 while lab2 is down")
        # when lab2 comes back, it takes new calls again
        gevent.sleep(5)  # FreeSWITCH unloads its modules before its PID is gone
        _run_shell(lab_pool.start_second)
        restarted = True
        _wait_port(lab_pool.second, up=True)
        _wait_until(lambda: _placed(lab, body).get("lab2", 0) > placed_before.get("lab2", 0),
                    "calls placed on lab2 after its return", seconds=120)
        run = lab_post.get(timeout=300)
        watch.switch_gone(int(time.time() * 1_000_000))  # none left open: all are final
    finally:
        lab.stop()
        if stopped and not restarted:
            _run_shell(lab_pool.start_second)  # left running, whatever happened
            _wait_port(lab_pool.second, up=True)
    final = run.final
    print("counts", final["counts"], "placed", _count_by_switch(final["details"]),
          "most lines", watch.most, "causes",
          sorted({(d.get("switch"), d["status"], d["hangupCause"]) for d in final["details"]}))
    # and every call is final, none dialled twice, the lines never exceeded
    assert sum(final["counts"].values()) == calls
    assert set(final["counts"]) <= {"completed", "failed"}
    assert all(len(legs) == 1 for call, legs in watch.legs_per_call.items() if call)
    assert watch.most <= lines
    # and the calls cut off by the stop end with the switch's word for it, on lab2 only (a call
    # live on lab2 was waited for before the stop; an answered call cut off stays `completed`)
    cut = [d for d in final["details"] if d["hangupCause"] == "SYSTEM_SHUTDOWN"]
    assert cut, sorted({(d.get("switch"), d["status"], d["hangupCause"])
                        for d in final["details"]})
    assert all(d["switch"] == "lab2" for d in cut), cut


def _details(lab: LabService, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's calls now (none before the request is posted)."""
    reply = lab.get(f"/v1/status/{body['requestId']}")
    return list(reply.json()["details"]) if reply.status_code == 200 else []


def _placed(lab: LabService, body: dict[str, Any]) -> dict[str, int]:
    return _count_by_switch(_details(lab, body))


def _count_by_switch(details: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for detail in details:
        if "switch" in detail:
            counts[detail["switch"]] = counts.get(detail["switch"], 0) + 1
    return counts


def _live_on(lab: LabService, body: dict[str, Any], switch: str) -> int:
    return sum(1 for d in _details(lab, body)
               if d.get("switch") == switch and d["status"] == "onProgress")


def _wait_until(predicate: Any, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.2)

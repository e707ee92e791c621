"""The whole service against a real FreeSWITCH: the seed's example request, posted unchanged but
for its numbers, dialled to the lab's scripted callees (marker `lab`).

Run with ROBOCALL_LAB_ESL=host:port:password (``make lab-test``, docs/lab.md); the callees are the
lab's scripted callees (tests/lab/freeswitch/): the last two digits of a number pick what the
callee does.
The run takes real time (a minute or two): the callees press keys every 1.5 s, the silent one
waits out three gather timeouts, extension 1000 talks for 5 s.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import pytest
import requests

from robocall import bootstrap
from robocall.api.auth import API_KEY_HEADER
from robocall.api.server import make_server
from robocall.config import Settings
from robocall.errors import SwitchError
from robocall.tts.voices import available_languages
from tests.lab.conftest import LabSwitch
from tests.support.audio import read_wav
from tests.support.requests_data import seed_with
from tests.support.service import step_rows

pytestmark = pytest.mark.lab

# The scripted callees (docs/lab.md): ..01 presses 1 every 1.5 s, ..02 presses 0 every 1.5 s,
# ..03 is silent for 40 s, ..04 is busy, ..05 rings forever, ..06 hangs up after 1 s,
# ..09 declines, ..99 is silent for 120 s.
PRESSES_1 = "+6580000001"
PRESSES_0 = "+6580000002"
# The seed's silent path (three gather tries of a ~7.5 s prompt and a 5 s timeout) reaches its
# transfer ~38.6 s after the answer: ..03 hangs up at 40 s, cutting the transfer's 5 s talk
# short (seen on the lab), so the silent callee here is ..99.
SILENT = "+6580000099"
BUSY = "+6580000004"
NO_ANSWER = "+6580000005"
HANGS_UP_AFTER_1S = "+6580000006"
REJECTS = "+6580000009"
NUMBERS = [PRESSES_1, PRESSES_0, SILENT, BUSY, NO_ANSWER, HANGS_UP_AFTER_1S, REJECTS]

# A bound on the whole run so a broken build fails instead of hanging; not a speed measure.
SETTLE_SECONDS = 240.0
# Samples louder than this (16-bit units) are not silence: comfort noise and a silent RTP leg
# stay far below; a spoken prompt peaks in the thousands.
AUDIBLE_LEVEL = 500.0


@dataclass
class LabRun:
    """Requests run on the lab, their final statuses, and what was seen while they ran."""

    lab: LabService
    finals: dict[str, dict[str, Any]]  # requestId -> final status
    calls: dict[str, dict[str, Any]]  # destination -> its call's detail (of the first request)
    live_uuids: set[str]  # leg uuids uuid_exists confirmed while the calls ran

    @property
    def final(self) -> dict[str, Any]:
        return next(iter(self.finals.values()))

    def get(self, path: str) -> requests.Response:
        return self.lab.get(path)


def lab_settings(lab_switch: LabSwitch, data_dir: Path, **overrides: Any) -> Settings:
    """robocall's settings for the lab: its switch, its callees, short ring timeouts."""
    settings = Settings(
        data_dir=data_dir,
        switch=f"esl://:{lab_switch.password}@{lab_switch.host}:{lab_switch.port}",
        dial_template=lab_switch.dial_template,
        # the default template: the lab's directory users 1000-1002 dial the lab callees
        extension_template="user/{ext}@{domain}",
        domain="127.0.0.1",
        originate_timeout_seconds=5,
        transfer_timeout_seconds=10,
    )
    return settings.with_overrides(**overrides)


class LabService:
    """The whole of robocall dialling the lab, its API on 127.0.0.1:0, one organization."""

    def __init__(self, settings: Settings, lines: int) -> None:
        self.service = bootstrap.build_service(settings, languages=available_languages())
        self.server = make_server(self.service.api.app, "127.0.0.1:0")
        self.server.start()
        self.service.start()
        for member in self.service.pool:
            member.client.wait_connected(10)
        repo = self.service.api.repo
        org = bootstrap.create_organization(repo, "lab", lines=lines, cps=10)
        self.org_id = org.id
        self.service.dispatcher.refresh_organizations()
        self.key = bootstrap.create_api_key(repo, org.id)
        host, port = self.server.address[:2]
        self.base_url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.stop(timeout=2)
        self.service.stop(grace_seconds=5)

    def get(self, path: str) -> requests.Response:
        headers = {API_KEY_HEADER: self.key}
        return requests.get(f"{self.base_url}{path}", headers=headers, timeout=30)

    def status(self, request_id: str) -> dict[str, Any]:
        reply = self.get(f"/v1/status/{request_id}")
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def run(self, bodies: list[dict[str, Any]]) -> LabRun:
        """Post every body, wait until all are final, asking the switch meanwhile whether
        each reported leg exists (uuid_exists)."""
        for body in bodies:
            reply = requests.post(
                f"{self.base_url}/v1/call", json=body, headers={API_KEY_HEADER: self.key},
                timeout=30,
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
        live: set[str] = set()
        finals: dict[str, dict[str, Any]] = {}
        started = time.monotonic()
        with gevent.Timeout(SETTLE_SECONDS, AssertionError("requests not final in time")):
            while len(finals) < len(bodies):
                for body in bodies:
                    status = self.status(body["requestId"])
                    self._note_live_legs(status, live)
                    if status["status"] in ("completed", "cancelled"):
                        finals[body["requestId"]] = status
                gevent.sleep(0.2)
        print(f"lab run took {time.monotonic() - started:.1f} s")
        first = finals[bodies[0]["requestId"]]
        calls = {detail["destination"]: detail for detail in first["details"]}
        return LabRun(self, finals, calls, live)

    def _note_live_legs(self, status: dict[str, Any], live: set[str]) -> None:
        for detail in status["details"]:
            for leg in detail["monitorData"]:
                uuid = leg["uuid"]
                if uuid and uuid not in live and self._exists(uuid, leg.get("switch", "")):
                    live.add(uuid)

    def _exists(self, uuid: str, switch: str = "") -> bool:
        """Whether the switch the leg lives on (a pool's, by name) has it now."""
        try:
            reply = self.service.pool.client(switch).api(f"uuid_exists {uuid}")
        except SwitchError:
            return False  # a switch of a pool that is down: no word now
        return reply.strip() == "true"


@pytest.fixture(scope="module")
def seed_on_lab(
    lab_switch: LabSwitch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabRun]:
    """The seed example posted once to a robocall dialling the lab; its final status."""
    lab = LabService(lab_settings(lab_switch, tmp_path_factory.mktemp("lab-seed")), len(NUMBERS))
    try:
        body = seed_with(f"lab-seed-{secrets.token_hex(3)}", destinations=len(NUMBERS))
        for destination, number in zip(body["destinations"], NUMBERS, strict=True):
            destination["phone"] = number
        yield lab.run([body])
    finally:
        lab.stop()


def test_every_call_ends_final_with_the_expected_counts(seed_on_lab: LabRun) -> None:
    final = seed_on_lab.final
    assert final["status"] == "completed"
    assert final["counts"] == {"completed": 4, "failed": 3}, final["counts"]


def test_rfc2833_1_runs_the_nested_gather_and_its_default_play(seed_on_lab: LabRun) -> None:
    detail = seed_on_lab.calls[PRESSES_1]
    assert detail["status"] == "completed"
    # The callee keeps pressing 1: the nested gather hears a key that matches no branch and
    # takes its default branch (the only one), which plays and hangs up.
    assert step_rows(detail) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("gather", "sucess_ok", "ongoing", "1", ""),
        ("gather", "sucess_ok", "ongoing", "1", ""),
        ("play", "sucess_ok", "ended", "", ""),
    ]
    assert detail["hangupCause"] == "NORMAL_CLEARING"
    assert [(leg["type"], leg["dest"]) for leg in detail["monitorData"]] == [("call", PRESSES_1)]


def test_rfc2833_0_transfers_to_extension_1000_which_answers(seed_on_lab: LabRun) -> None:
    detail = seed_on_lab.calls[PRESSES_0]
    assert detail["status"] == "completed"
    assert step_rows(detail) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("gather", "sucess_ok", "ongoing", "0", ""),
        ("transfer", "sucess_ok", "ended", "", "answered"),
    ]
    legs = detail["monitorData"]
    assert [(leg["type"], leg["dest"]) for leg in legs] == [
        ("call", PRESSES_0),
        ("transfer", "1000"),
    ]


def test_silence_takes_the_default_branch_to_extension_1000(seed_on_lab: LabRun) -> None:
    detail = seed_on_lab.calls[SILENT]
    assert detail["status"] == "completed"
    assert step_rows(detail) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("gather", "error_no_input", "ongoing", "", ""),
        ("transfer", "sucess_ok", "ended", "", "answered"),
    ]


@pytest.mark.parametrize(
    ("number", "cause", "call_status"),
    [
        (BUSY, "USER_BUSY", "busy"),
        (NO_ANSWER, "NO_ANSWER", "no_answer"),
        (REJECTS, "CALL_REJECTED", "failed"),
    ],
)
def test_unanswered_calls_fail_with_the_switch_cause(
    seed_on_lab: LabRun, number: str, cause: str, call_status: str
) -> None:
    detail = seed_on_lab.calls[number]
    assert detail["status"] == "failed"
    assert detail["hangupCause"] == cause
    # one entry, the first step's, saying why it never ran
    assert step_rows(detail) == [("play", "error_not_answered", "ended", "", "")]
    assert detail["callFlowSteps"][0]["info"]["call_status"] == call_status
    assert detail["answeredAt"] is None


def test_a_callee_hanging_up_mid_message_ends_the_step_with_error_hangup(
    seed_on_lab: LabRun,
) -> None:
    detail = seed_on_lab.calls[HANGS_UP_AFTER_1S]
    assert detail["status"] == "completed"
    steps = step_rows(detail)
    # The first message lasts about 1 s: the hang-up lands in it or in the gather's prompt.
    assert steps[-1][1:3] == ("error_hangup", "ended"), steps
    assert detail["hangupCause"] == "NORMAL_CLEARING"


def test_monitor_data_uuids_are_real_channels(seed_on_lab: LabRun) -> None:
    # busy and rejected legs live a few ms; these live long enough to be asked about
    long_enough = [PRESSES_1, PRESSES_0, SILENT, HANGS_UP_AFTER_1S, NO_ANSWER]
    for number in long_enough:
        for leg in seed_on_lab.calls[number]["monitorData"]:
            assert leg["uuid"] in seed_on_lab.live_uuids, (number, leg)


def test_recordings_are_served_and_hold_the_spoken_prompts(
    seed_on_lab: LabRun, tmp_path: Path
) -> None:
    for number in (PRESSES_1, PRESSES_0, SILENT):
        call_id = seed_on_lab.calls[number]["callId"]
        response = seed_on_lab.get(f"/v1/recordings/{call_id}")
        assert response.status_code == 200, (number, response.status_code)
        assert response.headers["Content-Type"] == "audio/wav"
        path = tmp_path / f"{call_id}.wav"
        path.write_bytes(response.content)
        wav = read_wav(path)
        assert wav.duration_seconds > 2.0, (number, wav.duration_seconds)
        loud = np.count_nonzero(np.abs(wav.samples) > AUDIBLE_LEVEL)
        # at least half a second of audible samples: the TTS prompts, recorded
        assert loud > wav.sample_rate * 0.5, (number, loud, wav.peak)
    busy = seed_on_lab.calls[BUSY]["callId"]
    assert seed_on_lab.get(f"/v1/recordings/{busy}").status_code == 404


# --- transfers: extension answered, busy, never answering; a number -----------------------------

# The robo leg's callee is silent and stays up (..99), so the transfer's outcome alone ends it.
TRANSFERS = [
    ("Ext:1000", "answered", "sucess_ok"),
    ("Ext:1001", "busy", "error_transfer_failed"),
    ("Ext:1002", "no_answer", "error_transfer_failed"),
    (HANGS_UP_AFTER_1S, "answered", "sucess_ok"),  # a number: answers, talks 1 s
]


def _transfer_body(request_id: str, destination: str) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "destinations": [
            {"phone": SILENT, "caller": "+6582674904", "properties": {"name": "Alex"}}
        ],
        "callFlow": {
            "steps": [
                {"name": "play", "message": {"msg": "Connecting you, {{name}}"}},
                {"name": "transfer", "destination": destination},
            ]
        },
    }


@pytest.fixture(scope="module")
def transfers_on_lab(
    lab_switch: LabSwitch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """One request per transfer target, run together; destination -> the call's detail."""
    settings = lab_settings(
        lab_switch, tmp_path_factory.mktemp("lab-transfers"), transfer_timeout_seconds=5
    )
    lab = LabService(settings, lines=2 * len(TRANSFERS))
    try:
        tag = secrets.token_hex(3)
        bodies = [
            _transfer_body(f"lab-transfer-{index}-{tag}", target)
            for index, (target, _, _) in enumerate(TRANSFERS)
        ]
        run = lab.run(bodies)
        yield {
            target: run.finals[body["requestId"]]["details"][0]
            for (target, _, _), body in zip(TRANSFERS, bodies, strict=True)
        }
    finally:
        lab.stop()


@pytest.mark.parametrize(("target", "transfer_status", "step_status"), TRANSFERS)
def test_transfer_outcomes_on_the_real_switch(
    transfers_on_lab: dict[str, dict[str, Any]],
    target: str,
    transfer_status: str,
    step_status: str,
) -> None:
    detail = transfers_on_lab[target]
    # the robo leg survives a failed bridge (continue_on_fail) and robocall ends it
    assert detail["status"] == "completed"
    assert step_rows(detail) == [
        ("play", "sucess_ok", "ongoing", "", ""),
        ("transfer", step_status, "ended", "", transfer_status),
    ]
    assert detail["hangupCause"] == "NORMAL_CLEARING"
    kinds = [leg["type"] for leg in detail["monitorData"]]
    assert kinds == (["call", "transfer"] if transfer_status == "answered" else ["call"])

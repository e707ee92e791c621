"""A message that cannot be rendered ends its call; it never leaves it parked and onProgress.

Seen while measuring answer -> first audio: when the TTS failed on a message that was due,
the error escaped the call's greenlet, so the call stayed ``onProgress`` for ever (its request
never completed) and its channel stayed parked on the switch with no one driving it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from robocall.errors import TtsError
from robocall.testing import Callee
from robocall.tts.cache import TtsCache
from robocall.tts.render import render_voice
from robocall.tts.voices import Voice
from tests.support.requests_data import seed_with
from tests.support.service import ServiceStarter, step_rows

pytestmark = pytest.mark.usefixtures("repo")


class FailingOn:
    """The real renderer, except that texts starting with ``prefix`` fail as an engine would."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(
        self, text: str, voice: Voice, pitch: int, rate: int, *,
        output: Path, sample_rate: int, timeout: float,
    ) -> Path:  # fmt: skip
        if text.startswith(self.prefix):
            raise TtsError("flite voice kal said nothing for this text")
        return render_voice(
            text, voice, pitch, rate, output=output, sample_rate=sample_rate, timeout=timeout
        )


@pytest.mark.parametrize(
    ("failing", "steps", "status", "cause"),
    [
        # the gather's prompt: robocall ends the call (the machine has no event for it yet),
        # and says so: not a gather "error_hangup" as if the callee had hung up
        (
            "Dear",
            [("play", "sucess_ok", "ongoing", "", "")],
            "failed",
            "ROBOCALL_STEP_FAILED",
        ),
        # the first play: error_playback, the call failed, robocall hangs up
        ("thanks", [("play", "error_playback", "ended", "", "")], "failed", "NORMAL_CLEARING"),
    ],
)
def test_an_unrenderable_message_ends_the_call(
    start_service: ServiceStarter,
    tmp_path: Path,
    failing: str,
    steps: list[tuple[str, ...]],
    status: str,
    cause: str,
) -> None:
    # given a TTS that cannot say one of the seed's messages, and a callee that stays on
    running = start_service(
        default=Callee(answer_after_ms=1, ring=False, hangup_after_ms=600_000),
        tts=TtsCache(tmp_path / "tts", renderer=FailingOn(failing)),
    )
    request_id = f"tts-fail-{secrets.token_hex(3)}"
    # when the seed request is dialled
    assert running.post_call(seed_with(request_id, destinations=1)).status_code == 200
    # then the call still ends, reporting the step it could not run, and its channel is gone
    final = running.wait_until_final(request_id)
    (detail,) = final["details"]
    assert step_rows(detail) == steps
    assert (detail["status"], detail["hangupCause"]) == (status, cause)
    channel = detail["monitorData"][0]["uuid"]
    assert channel not in {live.uuid for live in running.fake.channels()}

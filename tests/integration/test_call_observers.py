"""Observers hear each moment of a call, in order; a failing observer never breaks a call."""

from __future__ import annotations

import secrets

from robocall.errors import TtsError
from robocall.testing import Callee
from robocall.tts.cache import TtsCache


class Recorder:
    def __init__(self) -> None:
        self.moments: list[tuple[str, int, str]] = []

    def call_dialing(self, ticket):
        self.moments.append(("dialing", ticket.call_id, ""))

    def call_answered(self, ticket):
        self.moments.append(("answered", ticket.call_id, ""))

    def call_step(self, ticket, result):
        self.moments.append(("step", ticket.call_id, result.status.value))

    def call_ended(self, ticket, status, hangup_cause, duration_seconds):
        self.moments.append(("ended", ticket.call_id, f"{status}/{hangup_cause}"))

    def request_completed(self, ticket):
        self.moments.append(("request_completed", ticket.call_id, ticket.request_id))


class Broken:
    def __getattr__(self, name):
        def fail(*args):
            raise RuntimeError(f"observer broke on {name}")

        return fail


def test_moments_of_an_answered_and_a_busy_call(start_service):
    running = start_service({"+6580000002": Callee(outcome="busy", ring=False)})
    recorder = Recorder()
    observers = running.service.dispatcher.runner.observers
    observers.add(Broken())  # first, so the recorder proves the fan-out went on past it
    observers.add(recorder)
    request_id = f"obs-{secrets.token_hex(3)}"
    body = {
        "requestId": request_id,
        "destinations": [
            {"phone": "+6580000001", "caller": "+6582674904"},
            {"phone": "+6580000002", "caller": "+6582674904"},
        ],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello there."}}]},
    }
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(request_id)
    answered_id, busy_id = (int(d["callId"]) for d in final["details"])
    assert final["counts"] == {"completed": 1, "failed": 1}
    answered = [m for m in recorder.moments if m[1] == answered_id]
    busy = [m for m in recorder.moments if m[1] == busy_id]
    assert [m[0] for m in answered][:4] == ["dialing", "answered", "step", "ended"]
    assert answered[2][2] == "success_ok"
    assert answered[3][2] == "completed/NORMAL_CLEARING"
    assert [m[:1] + m[2:] for m in busy][:3] == [
        ("dialing", ""), ("step", "error_not_answered"), ("ended", "failed/USER_BUSY"),
    ]
    # exactly one call closed the request, and it was the last to end
    completions = [m for m in recorder.moments if m[0] == "request_completed"]
    assert len(completions) == 1 and completions[0][2] == request_id
    assert recorder.moments[-1][0] == "request_completed"


def test_a_prompt_that_cannot_be_rendered_fails_the_call_cleanly(start_service, tmp_path):
    # given a TTS engine that fails on every message
    def broken_engine(text, voice, pitch, rate, *, output, sample_rate, timeout):
        raise TtsError("the engine is broken")

    running = start_service({}, tts=TtsCache(tmp_path / "broken-tts", renderer=broken_engine))
    request_id = f"tts-{secrets.token_hex(3)}"
    body = {
        "requestId": request_id,
        "destinations": [{"phone": "+6580000001", "caller": "+6582674904"}],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Hello there."}}]},
    }
    assert running.post_call(body).status_code == 200
    # then the call ends, reported as a playback error, and its line is free again
    final = running.wait_until_final(request_id)
    [detail] = final["details"]
    assert detail["status"] == "failed"
    assert [s["info"]["status"] for s in detail["callFlowSteps"]] == ["error_playback"]
    assert running.service.dispatcher.report(running.org_id).free == 6

"""Rendering ahead, as the lab showed it must be: a call's first message is on disk before the
call is dialled, and a call renders its messages one after another, nearest first.

On the lab FreeSWITCH the scripted callees answer at once (no ring to hide a render in): with
every message of every call rendering at the same time, answer -> first audio reached 920 ms
at p99 and 3 of 20 callees hung up (after 1 s) before hearing anything. These tests pin the
two rules that brought it to 120 ms (scripts/bench_first_audio.py).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import gevent
import pytest

from robocall.esl.client import EslClient
from robocall.esl.protocol import Event
from robocall.testing import Callee
from robocall.tts.cache import TtsCache
from robocall.tts.render import render_voice
from robocall.tts.voices import Voice
from tests.support.requests_data import seed_with
from tests.support.service import ServiceStarter

pytestmark = pytest.mark.usefixtures("repo")

# Long enough that a call dialled without waiting for its render is created well before the
# render ends; it only makes the old behaviour fail, the assertions are about order.
SLOW_RENDER_SECONDS = 0.4


class RecordingRenderer:
    """The real renderer, slowed down, noting when each render of each text begins and ends."""

    def __init__(self) -> None:
        self.finished: dict[str, float] = {}
        self.running: set[str] = set()
        self.most_at_once_per_call: dict[str, int] = {}

    def __call__(
        self, text: str, voice: Voice, pitch: int, rate: int, *,
        output: Path, sample_rate: int, timeout: float,
    ) -> Path:  # fmt: skip
        # Every message of this test's destinations ends with its tag. (Calls queued by other
        # tests in the session's database may be dialled by this service too: not counted.)
        _, tagged, call = text.rpartition("#")
        self.running.add(text)
        if tagged:
            now_running = sum(1 for other in self.running if other.endswith(f"#{call}"))
            most = max(self.most_at_once_per_call.get(call, 0), now_running)
            self.most_at_once_per_call[call] = most
        try:
            gevent.sleep(SLOW_RENDER_SECONDS)
            return render_voice(
                text, voice, pitch, rate, output=output, sample_rate=sample_rate, timeout=timeout
            )
        finally:
            self.running.discard(text)
            self.finished[text] = time.time()


def _tagged_seed(request_id: str, numbers: list[str]) -> dict[str, Any]:
    """The seed flow, every message ending with its destination's tag so renders differ."""
    body = seed_with(request_id, destinations=len(numbers))
    for index, (destination, number) in enumerate(zip(body["destinations"], numbers, strict=True)):
        destination["phone"] = number
        destination["properties"] = {"name": f"Alex {index}", "amount": "5$", "dueDate": "today"}

    def tag(flow: dict[str, Any]) -> None:
        for step in flow["steps"]:
            if "message" in step:
                step["message"]["msg"] += " #{{name}}"
            for branch in step.get("branches", []):
                tag(branch["callFlow"])

    tag(body["callFlow"])
    return body


def test_a_call_is_dialled_only_once_its_first_message_is_rendered(
    start_service: ServiceStarter, tmp_path: Path
) -> None:
    # given callees that answer at once, and a TTS that takes a while per message
    renderer = RecordingRenderer()
    running = start_service(
        default=Callee(answer_after_ms=1, ring=False, hangup_after_ms=3000),
        tts=TtsCache(tmp_path / "tts", renderer=renderer),
        lines=3,
    )
    created: dict[str, float] = {}
    first_played: dict[str, float] = {}

    def on_event(event: Event) -> None:
        uuid = event.get("Unique-ID") or ""
        if event.name == "CHANNEL_CREATE":
            created.setdefault(uuid, time.time())
        elif event.name == "PLAYBACK_START":
            first_played.setdefault(uuid, time.time())

    # (watched on a connection of its own: robocall subscribes to no PLAYBACK_START)
    watcher = EslClient("127.0.0.1", running.fake.port, "ClueCon",
                        events=("CHANNEL_CREATE", "PLAYBACK_START"))
    watcher.add_event_listener(on_event)
    watcher.connect()
    request_id = f"render-{secrets.token_hex(3)}"
    numbers = ["+6591000001", "+6591000002", "+6591000003"]
    # when the seed request is posted
    response = running.post_call(_tagged_seed(request_id, numbers))
    assert response.status_code == 200, response.text
    final = running.wait_until_final(request_id)
    watcher.close()
    # then every call's channel was created after its first message ("thanks Alex N") was ready
    legs = {detail["monitorData"][0]["uuid"]: detail["destination"] for detail in final["details"]}
    assert len(legs) == 3 and set(created) >= set(legs)
    for uuid, number in legs.items():
        index = numbers.index(number)
        first_text = f"thanks Alex {index} #Alex {index}"
        assert renderer.finished[first_text] <= created[uuid], number
        # and the call played it
        assert uuid in first_played, number


def test_a_call_renders_its_messages_one_after_another(
    start_service: ServiceStarter, tmp_path: Path
) -> None:
    # given a TTS that renders two at a time for the process (the default)
    renderer = RecordingRenderer()
    running = start_service(
        default=Callee(answer_after_ms=1, ring=False, hangup_after_ms=3000),
        tts=TtsCache(tmp_path / "tts", renderer=renderer, max_concurrent=2),
        lines=2,
    )
    request_id = f"render-{secrets.token_hex(3)}"
    # when two calls of the seed flow (four messages each) are dialled
    response = running.post_call(_tagged_seed(request_id, ["+6591000011", "+6591000012"]))
    assert response.status_code == 200, response.text
    running.wait_until_final(request_id)
    # then no call ever had two renders going at once (its later messages never took a render
    # slot another call's first message was waiting for); a call's renders end with it
    assert {"thanks Alex 0 #Alex 0", "thanks Alex 1 #Alex 1"} <= set(renderer.finished)
    assert renderer.most_at_once_per_call == {"Alex 0": 1, "Alex 1": 1}

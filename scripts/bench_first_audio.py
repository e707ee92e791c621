"""Benchmark: answer -> first audio, through the whole service, on FakeSwitch or the lab switch.

robocall runs as ``robocall serve`` would (bootstrap.build_service, the API over HTTP on
127.0.0.1:0); one request of ``--calls`` destinations is posted: the seed's example flow with
different properties for every destination, so every call's messages are rendered afresh (at
dispatch, as the runner does). Measured on the switch's own clock (Event-Date-Timestamp): from
each call's CHANNEL_ANSWER to the PLAYBACK_START of its first prompt. Prints JSON with p50, p99
and max in ms, and how many answered calls never started their prompt.

    /work/venv/bin/python scripts/bench_first_audio.py [--calls 20] [--lines 5]
    ROBOCALL_LAB_ESL=127.0.0.1:8021:ClueCon /work/venv/bin/python scripts/bench_first_audio.py --lab

Default: FakeSwitch in-process, callees that answer after ``--ring-ms`` and hang up 1 s later.
``--lab``: the lab FreeSWITCH; callee ``+65800000006`` answers at once and hangs up after 1 s
(docs/lab.md), the hardest case for rendering ahead: no ring time at all.
Goal (docs/design.md, "TTS"): under 300 ms p99.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAB_CALLEE = "+6580000006"  # answers at once, hangs up after 1 s
NAMES = ("Alex", "Binh", "Chandra", "Dewi", "Eko", "Farah", "Gita", "Hoang", "Indra", "Jun")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(share * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def request_body(request_id: str, numbers: list[str]) -> dict[str, Any]:
    """The seed example with a different name, amount and date for every destination."""
    from tests.support.requests_data import seed_with

    body = seed_with(request_id, destinations=len(numbers))
    for index, (destination, number) in enumerate(zip(body["destinations"], numbers, strict=True)):
        destination["phone"] = number
        destination["properties"] = {
            "name": f"{NAMES[index % len(NAMES)]} number {index}",
            "amount": f"{100 + index * 7},000$",
            "dueDate": f"August {1 + index % 28}th, 2027",
        }
    return body


def main() -> None:
    """Run one request through the service and print the answer -> first audio numbers."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import requests

    from robocall import bootstrap
    from robocall.api.auth import API_KEY_HEADER
    from robocall.api.server import make_server
    from robocall.config import Settings
    from robocall.esl.client import EslClient
    from robocall.esl.protocol import Event
    from robocall.testing import Callee, CalleeBook, FakeSwitch
    from robocall.tts.voices import available_languages

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--cps", type=float, default=10.0)
    parser.add_argument("--ring-ms", type=int, default=0, help="FakeSwitch callees ring this long")
    parser.add_argument("--lab", action="store_true", help="dial the lab (ROBOCALL_LAB_ESL)")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="robocall-bench-audio-"))
    atexit.register(shutil.rmtree, data_dir, True)  # rendered audio, recordings, store
    fake: FakeSwitch | None = None
    if args.lab:
        host, port, password = os.environ["ROBOCALL_LAB_ESL"].split(":", 2)
        settings = Settings(
            data_dir=data_dir,
            switch=f"esl://:{password}@{host}:{port}",
            dial_template="sofia/internal/{number}@127.0.0.1:5090",
            originate_timeout_seconds=10,
        )
        numbers = [LAB_CALLEE] * args.calls
    else:
        callee = Callee(answer_after_ms=max(args.ring_ms, 1), ring=args.ring_ms > 0,
                        hangup_after_ms=1000)
        fake = FakeSwitch(callees=CalleeBook({}, callee)).start()
        settings = Settings(data_dir=data_dir, switch=fake.url)
        numbers = [f"+6590{index:06d}" for index in range(args.calls)]

    service = bootstrap.build_service(settings, languages=available_languages(),
                                      fake_switch=fake)
    request_id = f"bench-audio-{secrets.token_hex(3)}"
    answered: dict[str, int] = {}
    first_audio: dict[str, int] = {}

    def on_event(event: Event) -> None:
        if event.get("variable_robocall_request_id") != request_id:
            return
        uuid = event.get("Unique-ID") or ""
        stamp = int(event.get("Event-Date-Timestamp") or 0)
        if event.name == "CHANNEL_ANSWER":
            answered.setdefault(uuid, stamp)
        elif event.name == "PLAYBACK_START":
            first_audio.setdefault(uuid, stamp)

    # Watched on a connection of its own: robocall subscribes to no PLAYBACK_START.
    address = bootstrap.parse_switch_url(settings.switch if fake is None else fake.url)
    watcher = EslClient(address.host, address.port, address.password,
                        events=("CHANNEL_ANSWER", "PLAYBACK_START"))
    watcher.add_event_listener(on_event)
    watcher.connect()
    server = make_server(service.api.app, "127.0.0.1:0")
    server.start()
    service.start()
    try:
        service.switch.wait_connected(10)
        org = bootstrap.create_organization(service.api.repo, "bench", lines=args.lines,
                                            cps=args.cps)
        service.dispatcher.refresh_organizations()
        key = bootstrap.create_api_key(service.api.repo, org.id)
        base = "http://{}:{}".format(*server.address[:2])
        started = time.monotonic()
        reply = requests.post(f"{base}/v1/call", json=request_body(request_id, numbers),
                              headers={API_KEY_HEADER: key}, timeout=60)
        reply.raise_for_status()
        deadline = started + 60 + args.calls * 10
        while time.monotonic() < deadline:
            status = requests.get(f"{base}/v1/status/{request_id}",
                                  headers={API_KEY_HEADER: key}, timeout=60).json()
            if status["status"] == "completed":
                break
            gevent.sleep(0.25)
        wall = time.monotonic() - started
        counts = status["counts"]
    finally:
        server.stop(timeout=2)
        service.stop(grace_seconds=5)
        watcher.close()

    latencies = [(first_audio[uuid] - stamp) / 1000.0 for uuid, stamp in answered.items()
                 if uuid in first_audio]
    result: dict[str, Any] = {
        "switch": "lab" if args.lab else "fake",
        "calls": args.calls,
        "lines": args.lines,
        "answered": len(answered),
        "first_audio_measured": len(latencies),
        "never_played": len(answered) - len(latencies),
        "counts": counts,
        "wall_seconds": round(wall, 2),
        "goal_p99_ms": 300,
    }
    if latencies:
        result.update(
            p50_ms=round(percentile(latencies, 0.50), 1),
            p99_ms=round(percentile(latencies, 0.99), 1),
            max_ms=round(max(latencies), 1),
            min_ms=round(min(latencies), 1),
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

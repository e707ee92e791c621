"""Benchmark: a request with a different ``{{name}}`` per destination, dialled on FakeSwitch.

FakeSwitch runs in a process of its own (as FreeSWITCH would), so the CPU measured is
robocall's: this process and the engines it starts (flite, sox). robocall runs as ``robocall
serve`` would (bootstrap.build_service); one request of ``--calls`` destinations is posted, each
with its own name, a message of one play step:

    Hello {{name}}, this is a reminder from your clinic: your appointment is tomorrow at ten.

Prints JSON: calls/s dialled (originates over the time from the POST to the last one) and
completed, renders (engine runs) and renders/s, CPU ms per call, the most calls that were
``dialing`` at once without a channel at the switch (holding a line while rendering, or an
originate in flight; sampled every 0.1 s), and answer -> first audio p50/p99 on the
switch's clock (goal: p99 under 300 ms). ``--same`` gives every destination the same name (the
cost of a message without personal text, for comparison). ``--code DIR`` imports robocall from
another checkout (to measure before and after a change with the same script).

    .venv/bin/python scripts/bench_personalised.py [--calls 600] [--lines 200] [--cps 100]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

FAKE = """
import sys
from gevent import monkey; monkey.patch_all()
import gevent
from robocall.testing import Callee, CalleeBook, FakeSwitch
callee = Callee(answer_after_ms=int(sys.argv[2]), ring=True)
fake = FakeSwitch(CalleeBook({}, callee), time_scale=float(sys.argv[1]),
                  sessions_per_second=100000, max_sessions=100000).start()
print(fake.port, flush=True)
gevent.wait()
"""
WATCHED = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "PLAYBACK_START")
MESSAGE = (
    "Hello {{name}}, this is a reminder from your clinic: your appointment is tomorrow at ten."
)
FIRST = (
    "Alex",
    "Binh",
    "Chandra",
    "Dewi",
    "Eko",
    "Farah",
    "Gita",
    "Hoang",
    "Indra",
    "Jun",
    "Kirana",
    "Lestari",
    "Minh",
    "Nadia",
    "Omar",
    "Putri",
    "Quang",
    "Rina",
    "Sari",
    "Tuan",
)
LAST = (
    "Tan",
    "Lim",
    "Nguyen",
    "Wijaya",
    "Santoso",
    "Pham",
    "Rahman",
    "Ong",
    "Lee",
    "Goh",
    "Hartono",
    "Tran",
    "Chua",
    "Halim",
    "Le",
    "Kusuma",
    "Yeo",
    "Abdullah",
    "Do",
    "Ng",
)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(share * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def name(index: int) -> str:
    """A different, pronounceable full name for every index below 8,000."""
    return f"{FIRST[index % 20]} {LAST[index // 20 % 20]} {FIRST[index // 400 % 20]}"


def cpu_seconds(skip: int) -> float:
    """CPU used by this process and its children (the TTS engines it waited for, and the TTS
    workers still running), except child ``skip`` (FakeSwitch)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid = int(stat.parent.name)
        if int(fields[1]) == os.getpid() and pid != skip:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def main() -> None:
    """Run one personalised request through the service and print the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--cps", type=float, default=100.0)
    parser.add_argument("--ring-ms", type=int, default=1000, help="callees answer after this")
    parser.add_argument("--time-scale", type=float, default=1.0, help="FakeSwitch's time scale")
    parser.add_argument("--same", action="store_true", help="one name for every destination")
    parser.add_argument("--code", type=Path, default=ROOT, help="the robocall checkout to run")
    parser.add_argument("--tts-concurrency", type=int, default=2, help="renders at once")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    sys.path.insert(1, str(ROOT))

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
    from robocall.tts.voices import available_languages

    child = subprocess.Popen(
        [sys.executable, "-c", FAKE, str(args.time_scale), str(args.ring_ms)],
        stdout=subprocess.PIPE, cwd=args.code, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    port = int(child.stdout.readline())
    data_dir = Path(tempfile.mkdtemp(prefix="robocall-bench-personal-"))
    atexit.register(shutil.rmtree, data_dir, True)  # rendered audio, recordings, store
    settings = Settings(
        data_dir=data_dir,
        switch=f"esl://:ClueCon@127.0.0.1:{port}",
        switch_cps=10000.0,
        tts_concurrency=args.tts_concurrency,
    )
    service = bootstrap.build_service(settings, languages=available_languages())
    request_id = f"bench-personal-{secrets.token_hex(3)}"
    created: list[float] = []
    answered: dict[str, int] = {}
    first_audio: dict[str, int] = {}

    def on_event(event: Event) -> None:
        if event.get("variable_robocall_request_id") != request_id:
            return
        uuid = event.get("Unique-ID") or ""
        stamp = int(event.get("Event-Date-Timestamp") or 0)
        if event.name == "CHANNEL_CREATE":
            created.append(time.monotonic())
        elif event.name == "CHANNEL_ANSWER":
            answered.setdefault(uuid, stamp)
        elif event.name == "PLAYBACK_START":
            first_audio.setdefault(uuid, stamp)

    # A connection of its own, as a monitor would: robocall's does not subscribe PLAYBACK_START.
    watcher = EslClient("127.0.0.1", port, "ClueCon", events=WATCHED, command_timeout=30)
    watcher.add_event_listener(on_event)
    watcher.connect()
    server = make_server(service.api.app, "127.0.0.1:0")
    server.start()
    service.start()
    dialing_without_channel = 0
    try:
        service.switch.wait_connected(10)
        service.dispatching.wait(30)
        org = bootstrap.create_organization(
            service.api.repo, "bench", lines=args.lines, cps=args.cps
        )
        service.dispatcher.refresh_organizations()
        key = bootstrap.create_api_key(service.api.repo, org.id)
        base = "http://{}:{}".format(*server.address[:2])
        body = {
            "requestId": request_id,
            "destinations": [
                {"phone": f"+6590{index:06d}", "caller": "+6582674904",
                 "properties": {"name": name(0 if args.same else index)}}
                for index in range(args.calls)
            ],
            "callFlow": {"steps": [{"name": "play", "message": {"msg": MESSAGE}}]},
        }  # fmt: skip
        cpu_before, renders_before = cpu_seconds(child.pid), service.tts.renders
        started = time.monotonic()
        reply = requests.post(
            f"{base}/v1/call", json=body, headers={API_KEY_HEADER: key}, timeout=60
        )
        reply.raise_for_status()
        deadline = started + 120 + args.calls
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = requests.get(
                f"{base}/v1/status/{request_id}", params={"limit": 1},
                headers={API_KEY_HEADER: key}, timeout=60,
            ).json()  # fmt: skip
            counts = status["counts"]
            ringing = _robo_channels(service, org.id) - counts.get("onProgress", 0)
            dialing_without_channel = max(
                dialing_without_channel, counts.get("dialing", 0) - ringing
            )
            if status["status"] == "completed":
                break
            gevent.sleep(0.1)
        finished = time.monotonic()
        cpu = cpu_seconds(child.pid) - cpu_before
        renders = service.tts.renders - renders_before
    finally:
        server.stop(timeout=2)
        service.stop(grace_seconds=5)
        watcher.close()
        child.terminate()
        child.wait(10)

    latencies = [
        (first_audio[uuid] - stamp) / 1000.0
        for uuid, stamp in answered.items() if uuid in first_audio
    ]  # fmt: skip
    dial_seconds = (created[-1] - started) if created else float("nan")
    result: dict[str, Any] = {
        "code": str(args.code.resolve()),
        "calls": args.calls,
        "lines": args.lines,
        "cps": args.cps,
        "tts_concurrency": args.tts_concurrency,
        "distinct_names": not args.same,
        "counts": status.get("counts"),
        "calls_per_s_dialled": round(len(created) / dial_seconds, 1),
        "calls_per_s_completed": round(args.calls / (finished - started), 1),
        "renders": renders,
        "renders_per_s": round(renders / dial_seconds, 1),
        "cpu_ms_per_call": round(1000 * cpu / args.calls, 1),
        "most_dialing_without_channel": dialing_without_channel,
        "answered": len(answered),
        "never_played": len(answered) - len(latencies),
        "goal_first_audio_p99_ms": 300,
    }
    if latencies:
        result.update(
            first_audio_p50_ms=round(percentile(latencies, 0.50), 1),
            first_audio_p99_ms=round(percentile(latencies, 0.99), 1),
            first_audio_max_ms=round(max(latencies), 1),
        )
    print(json.dumps(result, indent=2))


def _robo_channels(service: Any, organization_id: str) -> int:
    """The organization's robo channels at the switch now (the dispatcher's line book)."""
    report = service.dispatcher.report(organization_id)
    return 0 if report is None else report.robo


if __name__ == "__main__":
    main()

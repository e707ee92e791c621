"""Benchmark: does the dispatcher use every free line at once, and never one too many?

An organization has 6 lines; 2 of them carry calls of another app that come and go (each lasts
0.2-2 s, and the next starts just before it ends); 1,000 queued robo calls of random short
duration (answer after 20-100 ms, the callee hangs up 0.3-1 s later during a long message).
Three processes, as in production: FakeSwitch (time scale 1) in one, robocall (API, dispatcher,
runner, its store) in this one, and an independent auditor in a third that asks the switch itself
(``show channels as json`` on its own Event Socket connection, every few ms) and also plays
the other app, originating and killing its calls on a second connection of its own.

Printed as JSON:
- ``reuse_ms``: line re-use delay, from a line-release event (CHANNEL_HANGUP_COMPLETE) received
  by robocall to the next originate it sends (taken just before the bgapi leaves), p50/p99/max.
  Releases are paired first in, first out with originates; a release whose line another app
  takes first (robocall's own line book then shows no free line for it) is not a re-use.
- ``utilization``: robo calls live / lines free for robocall (6 - the other app's live calls),
  as the auditor samples them, from the first originate until the queue is empty.
- ``violations``: auditor samples with more than 6 - 2 robo channels live. The other app starts
  each next call before it hangs up the last (its 2 lines are never free, 3 for an instant), so
  robocall may never have more than 4; ``max_lines_in_use`` shows the other app's overlap.

    /work/venv/bin/python scripts/bench_dispatch.py [--calls 1000] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LINES = 6
EXTERNAL_LINES = 2
ROBO_PREFIX = "+6581"
EXTERNAL_PREFIX = "+6599"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
MESSAGE = (
    "Hello, this is a reminder from the clinic about your appointment tomorrow morning at nine."
    " Please arrive fifteen minutes early and bring your identity card. Thank you and goodbye."
)


# --- the switch's process ---------------------------------------------------------------------


def run_fake(callees_file: str) -> None:
    """FakeSwitch on 127.0.0.1 with the benchmark's callees; prints its port; SIGTERM stops it."""
    import gevent
    import gevent.event

    from robocall.testing import CalleeBook, FakeSwitch

    fake = FakeSwitch(CalleeBook.from_file(callees_file), sessions_per_second=100_000,
                      max_sessions=100_000).start()
    print(fake.port, flush=True)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    stopping.wait()
    fake.stop()


# --- the auditor's process (and the other app) ------------------------------------------------


def run_auditor(port: int, org_id: str, out_path: str, seed: int) -> None:
    """Sample the switch's channels until SIGTERM; meanwhile keep the other app's calls going.
    Writes every sample (time, robo, other, new robo channel seen) to ``out_path``."""
    import gevent
    import gevent.event

    from robocall.errors import CommandFailed
    from robocall.esl import commands
    from robocall.esl.client import EslClient

    rng = random.Random(seed)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    auditor = EslClient("127.0.0.1", port, "ClueCon", events=("HEARTBEAT",))
    other_app = EslClient("127.0.0.1", port, "ClueCon", events=("HEARTBEAT",))
    auditor.connect()
    other_app.connect()

    def external_call(line: int, count: int) -> str:
        leg = f"{secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}"
        number = f"{EXTERNAL_PREFIX}{line}{count:06d}"
        other_app.bgapi(
            f"originate {{origination_uuid={leg},accountcode={org_id}}}"
            f"sofia/internal/{number}@127.0.0.1 &park()"
        )
        return leg

    def external_calls(line: int) -> None:
        # The next call starts before the last one ends, so this line is never free for
        # robocall: at most LINES - EXTERNAL_LINES robo calls may ever be live.
        count = 0
        leg = external_call(line, count)
        while not stopping.is_set():
            stopping.wait(rng.uniform(0.2, 2.0))
            count += 1
            previous, leg = leg, external_call(line, count)
            gevent.sleep(0.02)  # its channel is up
            with contextlib.suppress(CommandFailed):
                other_app.api(commands.uuid_kill(previous))

    callers = [gevent.spawn(external_calls, line) for line in range(EXTERNAL_LINES)]
    samples: list[tuple[float, int, int, bool]] = []
    seen: set[str] = set()
    while not stopping.is_set():
        rows = auditor.show_channels()
        now = time.time()
        robo: set[str] = set()
        other = 0
        for row in rows:
            if row.get("callstate") == "HANGUP":
                continue  # hung up, not yet destroyed: its line is free
            if row.get("dest", "").startswith(ROBO_PREFIX):
                robo.add(row["uuid"])
            else:
                other += 1
        new = bool(robo - seen)
        seen |= robo
        samples.append((now, len(robo), other, new))
        gevent.sleep(0.002)
    gevent.killall(callers)
    Path(out_path).write_text(json.dumps(samples))


# --- robocall's process -----------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _callees(calls: int, rng: random.Random) -> dict[str, Any]:
    return {
        "default": {"answer_after_ms": 20},
        "callees": {
            f"{ROBO_PREFIX}{i:06d}": {
                "answer_after_ms": rng.randint(20, 100),
                "hangup_after_ms": rng.randint(300, 1000),
            }
            for i in range(calls)
        },
    }


def create_postgres_database() -> tuple[str, Any]:
    """A fresh PostgreSQL database on 127.0.0.1 and a function that drops it."""
    import psycopg2

    name = f"robocall_bench_{secrets.token_hex(4)}"
    admin = psycopg2.connect(**PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    """Run the three processes, submit the calls, measure, print JSON."""
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true", help="store on PostgreSQL")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--role", choices=("main", "fake", "auditor"), default="main")
    parser.add_argument("--args", nargs="*", default=[])
    args = parser.parse_args()
    if args.role == "fake":
        return run_fake(*args.args)
    if args.role == "auditor":
        return run_auditor(int(args.args[0]), args.args[1], args.args[2], args.seed)
    with tempfile.TemporaryDirectory(prefix="robocall-bench-") as directory:
        print(json.dumps(_measure(args, Path(directory)), indent=1))


def _measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    import gevent
    import requests

    from robocall import bootstrap
    from robocall.api.auth import API_KEY_HEADER
    from robocall.api.server import make_server
    from robocall.calls.prompts import Prompts
    from robocall.config import Settings
    from robocall.flow.compile import compile_flow
    from robocall.flow.parse import parse_call_flow
    from robocall.tts.voices import available_languages

    rng = random.Random(args.seed)
    callees_file = directory / "callees.json"
    callees_file.write_text(json.dumps(_callees(args.calls, rng)))
    me = [sys.executable, str(Path(__file__).resolve())]
    fake = subprocess.Popen([*me, "--role", "fake", "--args", str(callees_file)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    drop_database = None
    auditor = None
    service = None
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline())
        database_url = ""
        if args.postgres:
            database_url, drop_database = create_postgres_database()
        settings = Settings(
            data_dir=directory / "data", database_url=database_url,
            switch=f"esl://:ClueCon@127.0.0.1:{port}", switch_cps=1000.0, node_id="bench",
        )
        languages = available_languages()
        service = bootstrap.build_service(settings, languages=languages)
        server = make_server(service.api.app, "127.0.0.1:0")
        server.start()
        service.start()
        assert service.dispatching.wait(30), "the dispatcher did not start"
        repo = service.api.repo
        org = bootstrap.create_organization(repo, "bench", lines=LINES, cps=1000.0)
        key = bootstrap.create_api_key(repo, org.id)
        service.dispatcher.refresh_organizations()
        body = {
            "requestId": "bench",
            "destinations": [{"phone": f"{ROBO_PREFIX}{i:06d}", "caller": "+6582674904"}
                             for i in range(args.calls)],
            "callFlow": {"steps": [{"name": "play", "message": {"msg": MESSAGE}}]},
        }
        program = compile_flow(parse_call_flow(body["callFlow"], languages=languages))
        for upcoming in program.messages_in_order():  # rendered once, before the clock runs
            Prompts(service.tts).audio(upcoming.message, {})

        # --- instruments: release events in, originates out (robocall's side) ----------------
        pending: deque[float] = deque()
        reuse: list[float] = []
        counters = {"handed": 0, "sent": 0, "first_sent": 0.0}
        dispatcher = service.dispatcher

        def trim() -> None:
            report = dispatcher.report(org.id)
            capacity = (report.free if report else 0) + counters["handed"] - counters["sent"]
            while len(pending) > max(0, capacity):
                pending.pop()  # another app took that line first: not a re-use

        def on_event(event: Any) -> None:
            headers = event.headers
            if headers.get("variable_accountcode") != org.id:
                return
            name = headers.get("Event-Name")
            if name == "CHANNEL_HANGUP_COMPLETE":
                pending.append(time.perf_counter())
                trim()
            elif name == "CHANNEL_CREATE" and "variable_robocall_call_id" not in headers:
                trim()

        original_bgapi = service.switch.bgapi

        def timed_bgapi(command: str, job_uuid: str | None = None) -> Any:
            if command.startswith("originate"):
                now = time.perf_counter()
                counters["sent"] += 1
                counters["first_sent"] = counters["first_sent"] or time.time()
                if pending:
                    reuse.append(now - pending.popleft())
            return original_bgapi(command, job_uuid)

        def on_dispatch(_org: str, _call_id: int) -> None:
            counters["handed"] += 1

        service.switch.bgapi = timed_bgapi  # type: ignore[method-assign]
        service.switch.add_event_listener(on_event)
        dispatcher.on_dispatch = on_dispatch

        samples_file = directory / "samples.json"
        auditor = subprocess.Popen(
            [*me, "--role", "auditor", "--seed", str(args.seed),
             "--args", str(port), org.id, str(samples_file)], cwd=ROOT)
        gevent.sleep(1.0)  # the other app's calls are up

        host, http_port = server.address[:2]
        started = time.time()
        response = requests.post(f"http://{host}:{http_port}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=120)
        assert response.status_code == 200, response.text
        queue_empty = 0.0
        while True:
            counts = repo.request_status(org.id, "bench", limit=1).counts
            if not queue_empty and not counts.get("queued"):
                queue_empty = time.time()
            if set(counts) <= {"completed", "failed"}:
                break
            gevent.sleep(0.1)
        finished = time.time()
        auditor.send_signal(signal.SIGTERM)
        auditor.wait(timeout=60)
        samples = json.loads(samples_file.read_text())
    finally:
        if auditor is not None and auditor.poll() is None:
            auditor.kill()
        if service is not None:
            service.stop(grace_seconds=2)
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=30)
        if drop_database is not None:
            drop_database()

    window = [s for s in samples if counters["first_sent"] <= s[0] <= queue_empty]
    ratios = [min(robo, LINES - other) / (LINES - other)
              for _, robo, other, _ in window if LINES - other > 0]
    robo_limit = LINES - EXTERNAL_LINES
    violations = sum(1 for _, robo, _, _ in samples if robo > robo_limit)
    return {
        "benchmark": "dispatch",
        "database": "postgresql" if args.postgres else "sqlite",
        "calls": args.calls,
        "lines": LINES,
        "other_app_lines": EXTERNAL_LINES,
        "final": counts,
        "seconds": round(finished - started, 1),
        "reuse_ms": {
            "count": len(reuse),
            "p50": round(_percentile(reuse, 0.50) * 1000, 2),
            "p99": round(_percentile(reuse, 0.99) * 1000, 2),
            "max": round(max(reuse, default=float("nan")) * 1000, 2),
            "mean": round(statistics.fmean(reuse) * 1000, 2) if reuse else None,
        },
        "utilization": {
            "mean": round(statistics.fmean(ratios), 4) if ratios else None,
            "samples_while_queued": len(ratios),
        },
        "violations": violations,
        "max_lines_in_use": max((robo + other for _, robo, other, _ in samples), default=0),
        "auditor_samples": len(samples),
        "max_robo_live": max((robo for _, robo, _, _ in samples), default=0),
        "pid": os.getpid(),
    }


if __name__ == "__main__":
    main()

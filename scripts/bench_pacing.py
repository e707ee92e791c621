"""Benchmark: dial at the switch's limit, from a cold start and after a kill -9; does the switch
ever refuse a dial for its sessions-per-second budget?

One FakeSwitch lives in this process for the whole run (it survives the kill, as a real
FreeSWITCH would) and enforces its budget exactly as FreeSWITCH does: a session above
``--sps`` in one second is refused with -ERR DESTINATION_OUT_OF_ORDER ("Throttle Error").
``robocall serve`` runs as a child process (SQLite, or ``--postgres``). An organization whose
own lines and pace allow far more than the switch (``--lines`` 300, 1,000 cps) gets ``--calls``
(5,000) short calls at once; the server is killed with SIGKILL once about half have been dialled,
started again at once, and runs the queue to its end.

Printed as JSON, from the switch's own record of the sessions it admitted (not robocall's):
``throttled`` (dials the switch refused; goal 0) per life, ``most_in_any_second`` (the largest
number of sessions admitted in any one-second window, wherever it starts; must be <= ``sps``)
per life, the pace reached, duplicates (numbers dialled twice; goal 0), and the final counts
(calls the kill left claimed but not yet sent are recorded failed ROBOCALL_RESTARTED, never
dialled: ``lost_to_the_kill``).

    .venv/bin/python scripts/bench_pacing.py [--calls 5000] [--sps 30] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PREFIX = "+6584"


def main() -> None:
    """Run the two lives; print JSON."""
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--sps", type=int, default=30, help="the switch's sessions per second")
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="bound on the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="robocall-pacing-") as directory:
        print(json.dumps(_run(args, Path(directory)), indent=1))


def _most_in_a_second(times: list[float]) -> int:
    most, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def _run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    import gevent
    import requests

    from robocall import bootstrap
    from robocall.api.auth import API_KEY_HEADER
    from robocall.config import Settings
    from robocall.testing import Callee, CalleeBook, FakeSwitch
    from scripts.bench_dispatch import create_postgres_database
    from tests.support.nodes import OriginateCounter, ServeProcess, originates_by_number

    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.max_seconds
    phones = [f"{PREFIX}{i:06d}" for i in range(args.calls)]
    book = CalleeBook(
        {p: Callee(answer_after_ms=rng.randint(30, 150), hangup_after_ms=rng.randint(200, 800))
         for p in phones},
        Callee(),
    )
    fake = FakeSwitch(book, sessions_per_second=args.sps, max_sessions=10_000).start()
    drop_database = None
    database_url = f"sqlite:///{directory / 'robocall.db'}"
    if args.postgres:
        database_url, drop_database = create_postgres_database()
    repo = bootstrap.open_repo(Settings(database_url=database_url))
    serve = None
    try:
        org = bootstrap.create_organization(repo, "pacing", lines=args.lines, cps=1000.0)
        key = bootstrap.create_api_key(repo, org.id)

        def start() -> ServeProcess:
            return ServeProcess(database_url=database_url, switch_url=fake.url,
                                node_id="pacing-node", data_dir=directory / "data").start()

        dialled = OriginateCounter(fake.received)
        serve = start()
        body = {
            "requestId": "pacing",
            "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
            "callFlow": {"steps": [{"name": "play", "message": {"msg": "Your parcel is here."}}]},
        }
        response = requests.post(f"{serve.base_url}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=300)
        assert response.status_code == 200, response.text
        started = time.monotonic()
        while dialled() < args.calls // 2 and time.monotonic() < deadline:
            gevent.sleep(0.1)
        serve.kill()
        first_life = {
            "seconds": round(time.monotonic() - started, 1),
            "originates": dialled(),
            "throttled": fake.switch.throttled,
            "most_in_any_second": fake.switch.most_sessions_in_a_second(),
        }
        admitted_before = len(fake.switch.admitted)
        restarted = time.monotonic()
        serve = start()  # at once: the switch still counts the last second of the first life
        while time.monotonic() < deadline:
            counts = repo.request_status(org.id, "pacing", limit=1).counts
            if set(counts) <= {"completed", "failed"}:
                break
            gevent.sleep(0.2)
        finished = time.monotonic()
        serve.stop()
        page = repo.request_status(org.id, "pacing", limit=args.calls)
    finally:
        if serve is not None:
            serve.kill()
        fake.stop()
        repo.close()
        if drop_database is not None:
            drop_database()

    admitted = fake.switch.admitted
    after = admitted[admitted_before:]
    originated = originates_by_number(fake.received)
    second_seconds = finished - restarted
    return {
        "benchmark": "pacing",
        "database": "postgresql" if args.postgres else "sqlite",
        "calls": args.calls,
        "sps": args.sps,
        "lines": args.lines,
        "first_life": first_life,
        "after_kill_9": {
            "seconds": round(second_seconds, 1),
            "originates": sum(originated.values()) - first_life["originates"],
            "throttled": fake.switch.throttled - first_life["throttled"],
            "most_in_any_second": _most_in_a_second(after),
        },
        "most_in_any_second": fake.switch.most_sessions_in_a_second(),
        "throttled": fake.switch.throttled,
        "sessions_per_second_reached": round(
            len(after) / max(0.001, after[-1] - after[0]), 1) if len(after) > 1 else 0,
        # numbers that got more than one channel (a refused originate makes none)
        "duplicate_dials": sum(1 for count in fake.switch.dialled.values() if count > 1),
        "counts": page.counts,
        "unresolved": sum(1 for c in page.calls if c.status.value not in {"completed", "failed"}),
        "failed_throttled": sum(1 for c in page.calls
                                if c.hangup_cause == "DESTINATION_OUT_OF_ORDER"),
        "lost_to_the_kill": sum(1 for c in page.calls if c.hangup_cause == "ROBOCALL_RESTARTED"
                                and c.phone not in fake.switch.dialled),
        "hung_up_by_recovery": sum(1 for c in page.calls if c.hangup_cause == "ROBOCALL_RESTARTED"
                                   and c.phone in fake.switch.dialled),
    }


if __name__ == "__main__":
    main()

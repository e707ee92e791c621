"""Benchmark: kill -9 a dialing robocall again and again; is anyone dialled twice, or forgotten?

One FakeSwitch lives in this process for the whole run (so it survives every kill, as a real
FreeSWITCH would), with FreeSWITCH's default budget of 30 sessions per second, enforced as
FreeSWITCH does (a transfer's leg spends it too); ``robocall serve`` runs as a child process
on one database (SQLite by default, ``--postgres`` for a fresh PostgreSQL database) with the same
node id each time. 1,000 calls
are queued on an organization of 10 lines; each call is answered and transferred, and the callee
hangs up 0.5-2 s later. Then, ``--kills`` times (50): start the server, let it dial a few calls
(until 1-20 more originates reach the switch), SIGKILL it mid-dialing. A last start runs the
queue to its end and is stopped with SIGTERM.

Printed as JSON, from the switch's own record of what it was sent and from the database:
``duplicate_dials`` (numbers originated more than once; goal 0), ``unresolved`` (calls not
final at the end; goal 0), ``never_dialled_failed`` (calls recorded failed that the switch never
received: claimed and committed, killed before the originate left), the final counts, how
many calls recovery found live and hung up, ``throttled`` (dials the switch refused for its
budget; goal 0) and ``failed_throttled`` (calls lost to such a refusal; goal 0).

    /work/venv/bin/python scripts/bench_crash.py [--kills 50] [--calls 1000] [--postgres]
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

LINES = 10
PREFIX = "+6583"


def main() -> None:
    """Run the kills, then the last start to the end of the queue; print JSON."""
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="bound on the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="robocall-crash-") as directory:
        print(json.dumps(_run(args, Path(directory)), indent=1))


def _run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    import gevent
    import requests

    from robocall import bootstrap
    from robocall.api.auth import API_KEY_HEADER
    from robocall.config import Settings
    from robocall.testing import Callee, CalleeBook, FakeSwitch
    from scripts.bench_dispatch import create_postgres_database
    from tests.support.nodes import OriginateCounter, ServeProcess

    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.max_seconds
    phones = [f"{PREFIX}{i:06d}" for i in range(args.calls)]
    book = CalleeBook(
        {p: Callee(answer_after_ms=rng.randint(50, 150), hangup_after_ms=rng.randint(500, 2000))
         for p in phones}
        | {"1000": Callee(answer_after_ms=50, hangup_after_ms=600_000)},
        Callee(),
    )
    fake = FakeSwitch(book, sessions_per_second=30, max_sessions=1000).start()
    drop_database = None
    database_url = f"sqlite:///{directory / 'robocall.db'}"
    if args.postgres:
        database_url, drop_database = create_postgres_database()
    repo = bootstrap.open_repo(Settings(database_url=database_url))
    serve = None
    kills = 0
    try:
        org = bootstrap.create_organization(repo, "crash", lines=LINES, cps=100.0)
        key = bootstrap.create_api_key(repo, org.id)

        def start() -> ServeProcess:
            return ServeProcess(database_url=database_url, switch_url=fake.url,
                                node_id="crash-node", data_dir=directory / "data").start()

        dialled = OriginateCounter(fake.received)
        serve = start()
        body = {
            "requestId": "crash",
            "destinations": [{"phone": p, "caller": "+6582674904"} for p in phones],
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
        }
        response = requests.post(f"{serve.base_url}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=120)
        assert response.status_code == 200, response.text
        started = time.monotonic()
        for _ in range(args.kills):
            if time.monotonic() > deadline or not _queued(repo, org.id):
                break
            if not serve.running:
                serve = start()
            target = dialled() + rng.randint(1, 20)
            wait_until = time.monotonic() + 10
            while dialled() < target and time.monotonic() < wait_until:
                gevent.sleep(0.005)
            serve.kill()
            kills += 1
        killing_seconds = time.monotonic() - started
        # the last start: settles what the last kill left, then runs the queue to its end
        serve = start()
        while time.monotonic() < deadline:
            counts = repo.request_status(org.id, "crash", limit=1).counts
            if set(counts) <= {"completed", "failed"}:
                break
            gevent.sleep(0.2)
        serve.stop()
        page = repo.request_status(org.id, "crash", limit=args.calls)
    finally:
        if serve is not None:
            serve.kill()
        fake.stop()
        repo.close()
        if drop_database is not None:
            drop_database()

    # the switch's own account: robo legs created per number (a refused originate creates none)
    originated = fake.switch.dialled
    final = {"completed", "failed"}
    return {
        "benchmark": "crash",
        "database": "postgresql" if args.postgres else "sqlite",
        "calls": args.calls,
        "lines": LINES,
        "kills": kills,
        "killing_seconds": round(killing_seconds, 1),
        "duplicate_dials": sum(1 for count in originated.values() if count > 1),
        "unresolved": sum(1 for call in page.calls if call.status.value not in final),
        "counts": page.counts,
        "failed_by_restart": sum(1 for c in page.calls if c.hangup_cause == "ROBOCALL_RESTARTED"),
        "never_dialled_failed": sum(
            1 for c in page.calls if c.status.value == "failed" and c.phone not in originated
        ),
        "originates": dialled(),  # received, refused ones included
        "robo_legs": sum(originated.values()),
        "channels_left_on_switch": len(fake.channels()),
        "throttled": fake.switch.throttled,
        "most_sessions_in_any_second": fake.switch.most_sessions_in_a_second(),
        "failed_throttled": sum(
            1 for c in page.calls if c.hangup_cause == "DESTINATION_OUT_OF_ORDER"
        ),
    }


def _queued(repo: Any, org_id: str) -> int:
    return int(repo.request_status(org_id, "crash", limit=1).counts.get("queued", 0))


if __name__ == "__main__":
    main()

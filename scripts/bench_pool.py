"""Benchmark: two robocall nodes on PostgreSQL over a pool of three FakeSwitches, 3,000 lines
over 20 organizations, other apps' calls coming and going on every switch.

The switches live in this process (FakeSwitch, real Event Socket over TCP); each robocall node
is a ``robocall serve`` child process over all three switches, on one scratch PostgreSQL
database (dropped afterwards). The organizations' lines are uneven (5 x 300, 5 x 150, 10 x 75:
3,000), each gets twice its lines in calls (transferred to extension 1000, which holds the
line ``--hold`` seconds), and a greenlet per organization starts and ends other apps' calls on
random switches (about a tenth of its lines, changing several times a second).

A sampler looks at every switch every 5 ms in one step (the sum is one instant) and counts,
per organization, robo and other lines up. Printed as JSON:

- ``violations``: robo calls that appeared while the organization's lines were all taken by
  robo calls and other apps' calls robocall had been told of when it sent the originate (by
  the switch's own Event-Sequence: each originate carries ``robocall_lines_seen``, the last
  event of each switch robocall's line count had read; goal 0). ``raced_external``: robo calls
  over the lines only because another app's call began after that (no dialer can know of a
  call whose event it has not received; shown, not a violation). ``most_over_lines``: the
  worst of either kind.
- ``duplicate_dials`` (goal 0), the final counts, ``not_final`` (goal 0);
- ``line_reuse_ms`` p50/p99: from a sample where an organization that had all its lines in use
  has one free, to the sample where a robo call of it took the line (to within a sample);
- ``placement``: robo calls per switch, and its spread ((max - min) / mean);
- ``dials_per_second``: robo originates over the time from the first to the last.

    .venv/bin/python scripts/bench_pool.py [--scale 1.0] [--hold 20] [--max-seconds 900]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWITCHES = 3
NODES = 2
LINES = [300] * 5 + [150] * 5 + [75] * 10  # 3,000 over 20 organizations


def main() -> None:
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every organization's lines (0.1: a quick run)")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds a call holds a line")
    parser.add_argument("--calls-per-line", type=float, default=2.0)
    parser.add_argument("--external-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sample-ms", type=float, default=5.0)
    parser.add_argument("--switches", type=int, default=SWITCHES)
    parser.add_argument("--nodes", type=int, default=NODES)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="bound on the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="robocall-pool-") as directory:
        print(json.dumps(_run(args, Path(directory)), indent=1))


def _run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    import gevent
    import requests

    from robocall import bootstrap
    from robocall.api.auth import API_KEY_HEADER
    from robocall.config import Settings
    from robocall.testing import Callee, CalleeBook, FakeSwitch
    from tests.support.api_server import scratch_postgresql_database
    from tests.support.nodes import ServeProcess, originates_by_number
    from tests.support.pool import PoolSampler

    rng = random.Random(args.seed)
    book = CalleeBook({"1000": Callee(answer_after_ms=50, hangup_after_ms=int(args.hold * 1000))},
                      Callee(answer_after_ms=100))
    fakes = [FakeSwitch(book, sessions_per_second=2000, max_sessions=10000).start()
             for _ in range(args.switches)]
    pool_url = ",".join(f"{fake.url}#sw{index}" for index, fake in enumerate(fakes))
    with scratch_postgresql_database("robocall_bench_pool") as database_url:
        repo = bootstrap.open_repo(Settings(database_url=database_url))
        orgs = []
        for index, lines in enumerate(LINES):
            lines = max(2, round(lines * args.scale))
            org = bootstrap.create_organization(repo, f"bench {index}", lines=lines, cps=200.0)
            orgs.append((org.id, lines, bootstrap.create_api_key(repo, org.id)))
        created_at: dict[str, tuple[int, int]] = {}  # other app's call -> (switch, CREATE seq)
        sampler = PoolSampler(fakes, {org_id: lines for org_id, lines, _ in orgs},
                              created_at=created_at, period=args.sample_ms / 1000)
        nodes = [ServeProcess(database_url=database_url, switch_url=pool_url,
                              node_id=f"bench-{n}", data_dir=directory / f"node{n}")
                 for n in range(args.nodes)]
        externals = []
        started = time.monotonic()
        try:
            for node in nodes:
                node.start()
            for org_id, lines, _ in orgs:
                externals.append(gevent.spawn(
                    _other_apps, fakes, org_id, max(1, round(lines * args.external_share)),
                    random.Random(rng.random()), created_at))
            request_ids = []
            for index, (org_id, lines, key) in enumerate(orgs):
                calls = round(lines * args.calls_per_line)
                body = {
                    "requestId": f"bench-{index}",
                    "destinations": [{"phone": f"+65{index:02d}{i:06d}", "caller": "+6582674904"}
                                     for i in range(calls)],
                    "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
                }
                node = nodes[index % len(nodes)]
                for _attempt in range(20):
                    # the same requestId and body again is an idempotent retry: a 503 (the
                    # store busy with both nodes' dispatch) is asked again
                    response = requests.post(f"{node.base_url}/v1/call", json=body,
                                             headers={API_KEY_HEADER: key}, timeout=120)
                    if response.status_code != 503:
                        break
                    gevent.sleep(1.0)
                response.raise_for_status()
                request_ids.append((org_id, body["requestId"], calls))
            deadline = started + args.max_seconds
            while time.monotonic() < deadline:
                done = all(
                    sum(repo.request_status(org_id, request_id, limit=1).counts.values())
                    == calls and _final(repo, org_id, request_id)
                    for org_id, request_id, calls in request_ids
                )
                if done:
                    break
                gevent.sleep(1.0)
            sampler.sample()
        finally:
            sampler.stop()
            for greenlet in externals:
                greenlet.kill()
            for node in nodes:
                node.stop(timeout=30)
        counts: dict[str, int] = {}
        for org_id, request_id, _ in request_ids:
            for status, count in repo.request_status(org_id, request_id, limit=1).counts.items():
                counts[str(status)] = counts.get(str(status), 0) + count
        originated: dict[str, int] = {}
        per_switch = []
        first_last: list[float] = []
        for fake in fakes:
            numbers = originates_by_number(fake.received)
            per_switch.append(sum(numbers.values()))
            for number, count in numbers.items():
                originated[number] = originated.get(number, 0) + count
            first_last.extend(fake.switch.admitted)
        repo.close()
    for fake in fakes:
        fake.stop()
    seen = sampler.orgs.values()
    mean = statistics.mean(per_switch) if per_switch else 0
    span = (max(first_last) - min(first_last)) if first_last else 0.0
    total_calls = sum(round(lines * args.calls_per_line) for _, lines, _ in orgs)
    return {
        "switches": args.switches,
        "nodes": args.nodes,
        "organizations": len(orgs),
        "lines": sum(lines for _, lines, _ in orgs),
        "calls": total_calls,
        "hold_seconds": args.hold,
        "seconds": round(time.monotonic() - started, 1),
        "violations": sum(s.violations for s in seen),
        "raced_external": sum(s.raced for s in seen),
        "most_over_lines": max(s.max_total_at_robo_dial - s.lines for s in seen),
        "samples": sampler.samples,
        "duplicate_dials": sum(1 for c in originated.values() if c > 1),
        "dialled": len(originated),
        "counts": counts,
        "not_final": total_calls - counts.get("completed", 0) - counts.get("failed", 0)
        - counts.get("cancelled", 0),
        "line_reuse_ms": _percentiles([r * 1000 for o in seen for r in o.reuse]),
        "placement": {"robo_calls_per_switch": per_switch,
                      "spread": round((max(per_switch) - min(per_switch)) / mean, 3)
                      if mean else None},
        "dials_per_second": round(len(originated) / span, 1) if span else None,
    }


def _final(repo: Any, org_id: str, request_id: str) -> bool:
    counts = repo.request_status(org_id, request_id, limit=1).counts
    return not any(str(status) in ("queued", "dialing", "onProgress") for status in counts)


def _other_apps(fakes: list[Any], org_id: str, target: int, rng: random.Random,
                created_at: dict[str, tuple[int, int]]) -> None:
    """Another app's calls of the organization: about ``target`` of them at a time, each
    starting and ending at random moments on a random switch. ``created_at`` gets each one's
    switch and the Event-Sequence of its CHANNEL_CREATE (its first event)."""
    import gevent

    live: list[tuple[Any, str]] = []
    while True:
        if len(live) < target * 2 and (not live or rng.random() < target / (2 * len(live))):
            index = rng.randrange(len(fakes))
            fake = fakes[index]
            sequence = fake.switch.factory.sequence + 1
            channel_uuid = fake.start_external_call({"accountcode": org_id})
            created_at[channel_uuid] = (index, sequence)
            live.append((fake, channel_uuid))
        elif live:
            fake, channel_uuid = live.pop(rng.randrange(len(live)))
            fake.end_external_call(channel_uuid)
        gevent.sleep(rng.expovariate(8.0))


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(ordered[len(ordered) // 2], 1),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
    }


if __name__ == "__main__":
    main()

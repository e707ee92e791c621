#!/usr/bin/env python3
"""Claim benchmark for calling windows: one request of 100,000 destinations submitted while
their daily window is closed, then claims as the dispatcher makes them (6 lines a tick).

Prints JSON per database (a temporary SQLite file; a temporary PostgreSQL database at --pg,
created and dropped here): the submission's seconds, the slowest claim (the one that moves
every call on to the window's next opening), and a claim once every call waits (what each
dispatcher tick costs while the request waits for its window).

    python scripts/bench_window_claim.py [--destinations 100000] [--pg 127.0.0.1:5432]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robocall import bootstrap  # noqa: E402
from robocall.flow.parse import parse_call_request  # noqa: E402
from robocall.store.db import open_database  # noqa: E402
from robocall.store.migrations import migrate  # noqa: E402
from robocall.store.repo import Repo  # noqa: E402

EVENING_IN_SINGAPORE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 20:00 there: closed
CLAIMS = 20


def measure(url: str, destinations: int) -> dict[str, Any]:
    """Submit the request and time the claims on the database at ``url``."""
    database = open_database(url)
    migrate(database)
    repo = Repo(database, clock=lambda: EVENING_IN_SINGAPORE)
    org_id = bootstrap.create_organization(repo, "bench", lines=6).id
    window = {"daily": {"from": "09:00", "to": "18:00", "timeZone": "destination"}}
    body = {
        "requestId": "window-bench",
        "destinations": [
            {"phone": f"+6581{index:06d}", "caller": "+6582674904"}
            for index in range(destinations)
        ],
        "callFlow": {"steps": [{"name": "play", "message": {"msg": "hello"}}]},
        "window": window,
    }
    started = time.perf_counter()
    request = parse_call_request(body, languages={"en"}, max_destinations=destinations)
    repo.submit_request(org_id, request, call_flow_json=json.dumps(body["callFlow"]),
                        body_hash="bench", window_json=json.dumps(window))
    submitted = time.perf_counter() - started
    claims = []
    for _ in range(CLAIMS):
        started = time.perf_counter()
        claimed = repo.claim_calls(org_id, [secrets.token_hex(8) for _ in range(6)])
        claims.append(time.perf_counter() - started)
        assert claimed == [], "no call may be claimed outside its window"
    repo.close()
    return {
        "database": url.split(":", 1)[0],
        "destinations": destinations,
        "submit_seconds": round(submitted, 3),
        "slowest_claim_ms": round(max(claims) * 1000, 1),
        "claim_while_waiting_ms": round(sorted(claims)[len(claims) // 2] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--destinations", type=int, default=100_000)
    parser.add_argument("--pg", default="127.0.0.1:5432", help="PostgreSQL host:port, or ''")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as directory:
        results.append(measure(f"sqlite:///{directory}/bench.db", args.destinations))
    if args.pg:
        host, _, port = args.pg.partition(":")
        name = f"robocall_window_bench_{secrets.token_hex(4)}"
        admin = psycopg2.connect(host=host, port=int(port or 5432), user="postgres",
                                 dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        try:
            results.append(measure(f"postgresql://postgres@{args.pg}/{name}", args.destinations))
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

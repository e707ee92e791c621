#!/usr/bin/env python3
"""Ingest benchmark: POST one request of 100,000 destinations to a real server; time it.

Starts ``robocall serve`` as a subprocess on 127.0.0.1 for each database (a temporary SQLite
file; a temporary PostgreSQL database at --pg, created and dropped here), or targets a
running server with --url and --key. Prints JSON: seconds per POST (median of --runs), the
body size, and GET /v1/status (summary + first page) latency over a keep-alive connection.

Goals (issue 2): POST <= 1 s median on SQLite, < 2 s on PostgreSQL; status < 20 ms.

    python scripts/bench_ingest.py [--destinations 100000] [--runs 5] [--pg 127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY_HEADER = "x-credential-api-key"


def request_body(request_id: str, destinations: int) -> bytes:
    """A seed-shaped request whose destinations average ~290 bytes of JSON each."""
    body = {
        "requestId": request_id,
        "destinations": [
            {
                "phone": f"+8491{index:07d}",
                "caller": "+6582674904",
                "properties": {
                    "name": f"Customer number {index:06d}",
                    "dueDate": "August 20th, 2020",
                    "amount": f"{(index * 7919) % 1_000_000:,}$",
                    "account": f"ACC-{index:010d}",
                    "branch": "District 1, Ho Chi Minh City",
                    "agent": "Nguyen Van An",
                    "note": "second reminder, unpaid since July 2020",
                },
            }
            for index in range(destinations)
        ],
        "enableCallRecording": False,
        "callFlow": {"steps": [
            {"name": "play", "message": {"msg": "Hello {{name}}", "lang": "en"}},
            {"name": "gather", "message": {
                "msg": "Dear {{name}}, {{amount}} is due on {{dueDate}}. Press 1 to talk to us."},
             "branches": [{"digit": "1", "callFlow": {"steps": [
                 {"name": "transfer", "destination": "Ext:1000"}]}}]},
        ]},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "robocall", *args, "--database", database_url],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120,
    )
    return done.stdout.strip()


@contextmanager
def running_server(database_url: str) -> Iterator[tuple[str, str]]:
    """A ``robocall serve`` subprocess on a free port, and a key: ``(base_url, key)``."""
    org_id = cli(database_url, "org", "create", "bench", "--lines", "10")
    key = cli(database_url, "key", "create", org_id)
    # Ingest alone is measured: with no lines the dialer leaves the queued calls queued.
    cli(database_url, "org", "set-lines", org_id, "--lines", "0")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "robocall", "serve", "--listen", f"127.0.0.1:{port}",
         "--database", database_url],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(f"{base_url}/v1/openapi.json", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base_url, key
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def postgres_database(address: str) -> Iterator[str]:
    host, _, port = address.partition(":")
    name = f"robocall_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(host=host, port=int(port or 5432), user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{address}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def measure(base_url: str, key: str, destinations: int, runs: int) -> dict[str, Any]:
    """POST ``runs`` requests (each a new requestId), then time status polls of the last."""
    session = requests.Session()
    session.headers.update({KEY_HEADER: key, "Content-Type": "application/json"})
    post_seconds: list[float] = []
    body_bytes = 0
    request_id = ""
    for run in range(runs):
        request_id = f"bench-{run}-{secrets.token_hex(3)}"
        body = request_body(request_id, destinations)
        body_bytes = len(body)
        started = time.perf_counter()
        answer = session.post(f"{base_url}/v1/call", data=body, timeout=120)
        post_seconds.append(time.perf_counter() - started)
        answer.raise_for_status()
    status_ms: list[float] = []
    for _ in range(30):
        started = time.perf_counter()
        answer = session.get(f"{base_url}/v1/status/{request_id}", timeout=30)
        status_ms.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    page = answer.json()
    assert page["total"] == destinations and len(page["details"]) == 100
    return {
        "destinations": destinations,
        "body_bytes": body_bytes,
        "bytes_per_destination": round(body_bytes / destinations),
        "post_seconds_runs": [round(s, 3) for s in post_seconds],
        "post_seconds_median": round(statistics.median(post_seconds), 3),
        "status_ms_median": round(statistics.median(status_ms), 2),
        "status_ms_max": round(max(status_ms), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--destinations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", default="127.0.0.1:5432", help="PostgreSQL host:port, or ''")
    parser.add_argument("--url", help="target a running server instead (needs --key)")
    parser.add_argument("--key", help="API key for --url")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    if args.url:
        results["target"] = measure(args.url, args.key, args.destinations, args.runs)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            url = f"sqlite:///{scratch}/bench.db"
            with running_server(url) as (base_url, key):
                results["sqlite"] = measure(base_url, key, args.destinations, args.runs)
        if args.pg:
            with postgres_database(args.pg) as url, running_server(url) as (base_url, key):
                results["postgresql"] = measure(base_url, key, args.destinations, args.runs)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

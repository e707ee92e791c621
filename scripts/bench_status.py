#!/usr/bin/env python3
"""Status benchmark: GET /v1/status of requests of 1,000 / 10,000 / 100,000 calls.

For each size and database: submit the request to a ``robocall serve`` subprocess (no lines, so
nothing is dialled), then restart the server on the same database and read the whole status
once, as a B3 client does (no paging): seconds to the last byte, bytes, and the server's peak
RSS (VmHWM) before and after — the full status is streamed page by page, so its cost in memory
must not grow with the request. Then the paged status (``?limit=100``, first page and pages
deep in the request), p50/p99 over a keep-alive connection, beside GET /v1/lines's (the floor of
an authenticated answer on this machine); goal: p99 < 20 ms. Prints JSON.

    python scripts/bench_status.py [--sizes 1000,10000,100000] [--pg 127.0.0.1:5432|'']
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from bench_ingest import KEY_HEADER, cli, postgres_database, request_body, serving

PAGED_POLLS = 300


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc status")


def measure(database_url: str, sizes: list[int]) -> dict[str, Any]:
    org_id = cli(database_url, "org", "create", "bench", "--lines", "1")
    key = cli(database_url, "key", "create", org_id)
    headers = {KEY_HEADER: key}
    with serving(database_url) as (_, base_url):
        # no lines: the calls stay queued, nothing is dialled
        requests.put(f"{base_url}/v1/lines", json={"maxConcurrentCalls": 0}, headers=headers,
                     timeout=30).raise_for_status()
        for size in sizes:
            answer = requests.post(f"{base_url}/v1/call", data=request_body(f"s{size}", size),
                                   headers={**headers, "Content-Type": "application/json"},
                                   timeout=300)
            answer.raise_for_status()
    results: dict[str, Any] = {}
    for size in sizes:
        # a fresh server: its peak RSS is then the status's, not the ingest's
        with serving(database_url) as (server, base_url):
            session = requests.Session()
            session.headers.update(headers)
            session.get(f"{base_url}/v1/status/s{size}?limit=1", timeout=30).raise_for_status()
            before = peak_rss_mib(server.pid)
            started = time.perf_counter()
            body_bytes, chunks = 0, 0
            with session.get(f"{base_url}/v1/status/s{size}", stream=True, timeout=300) as full:
                full.raise_for_status()
                for chunk in full.iter_content(chunk_size=None):
                    body_bytes += len(chunk)
                    chunks += 1
            seconds = time.perf_counter() - started
            after = peak_rss_mib(server.pid)
            paged = _paged_ms(session, base_url, f"s{size}")
        results[str(size)] = {
            "full_status_seconds": round(seconds, 3),
            "full_status_bytes": body_bytes,
            "full_status_chunks_received": chunks,
            "server_peak_rss_mib_before": before,
            "server_peak_rss_mib_after": after,
            "server_peak_rss_growth_mib": round(after - before, 1),
            **paged,
        }
    return results


def _paged_ms(session: requests.Session, base_url: str, request_id: str) -> dict[str, float]:
    url = f"{base_url}/v1/status/{request_id}"
    cursors: list[str | None] = [None]
    page = session.get(url, params={"limit": 100}, timeout=30).json()
    while page["nextCursor"] and len(cursors) < 50:  # pages spread through the request
        cursors.append(page["nextCursor"])
        page = session.get(url, params={"limit": 1000, "cursor": page["nextCursor"]},
                           timeout=30).json()
    timings: list[float] = []
    for index in range(PAGED_POLLS):
        cursor = cursors[index % len(cursors)]
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        started = time.perf_counter()
        session.get(url, params=params, timeout=30).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    # the floor on this machine: the smallest authenticated answer, over the same connection
    floor: list[float] = []
    for _ in range(PAGED_POLLS):
        started = time.perf_counter()
        session.get(f"{base_url}/v1/lines", timeout=30).raise_for_status()
        floor.append((time.perf_counter() - started) * 1000)
    return {
        "paged_status_ms_p50": _percentile(timings, 0.5),
        "paged_status_ms_p99": _percentile(timings, 0.99),
        "lines_ms_p50": _percentile(floor, 0.5),
        "lines_ms_p99": _percentile(floor, 0.99),
    }


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return round(ordered[max(0, int(len(ordered) * share) - 1)], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="PostgreSQL host:port, or ''")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        results["sqlite"] = measure(f"sqlite:///{scratch}/bench.db", sizes)
    if args.pg:
        with postgres_database(args.pg) as url:
            results["postgresql"] = measure(url, sizes)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

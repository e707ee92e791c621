"""Reading ``GET /metrics`` of a running robocall in tests: every sample by name and labels."""

from __future__ import annotations

import time

import gevent
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.service import SETTLE_SECONDS, RunningService


def scrape(running: RunningService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    response = requests.get(f"{running.base_url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that have (at least) ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= set(have))


def only_switch(samples) -> str:
    """The name of the one switch the per-switch gauges show."""
    names = [dict(labels)["switch"] for (name, labels) in samples
             if name == "robocall_switch_connected"]
    assert len(names) == 1, names
    return names[0]


def wait_for_metrics(running: RunningService, predicate, what: str):
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        samples = scrape(running)
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            shown = {k: v for k, v in samples.items() if k[0].startswith("robocall_")}
            raise AssertionError(f"metrics never showed {what}: {shown}")
        gevent.sleep(0.05)

"""``robocall serve`` as an admin runs it with ROBOCALL_LOG_JSON=true: JSON log lines on stderr,
``/metrics`` to scrape and the dashboard's sign-in at ``/``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gevent
import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0  # a bound, so a broken build fails instead of hanging


def test_serve_logs_json_and_serves_metrics_and_the_dashboard(tmp_path):
    # given robocall serve on FakeSwitch with JSON logs, on a database of its own (a dialer on
    # the tests' shared database would dial the other tests' calls)
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    environment = {**os.environ, "ROBOCALL_LOG_JSON": "true", "ROBOCALL_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "robocall", "serve", "--listen", "127.0.0.1:0",
         "--switch", "fake", "--database", database_url],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True, env=environment,
    )
    lines: list[dict] = []
    try:
        assert server.stderr is not None
        base_url = None
        for raw in server.stderr:
            # then every line it writes is one JSON object
            line = orjson.loads(raw)
            lines.append(line)
            if line["message"].startswith("robocall API on "):
                base_url = line["message"].split()[3]
                break
        assert base_url, f"serve did not say where it listens: {lines}"
        gevent.spawn(lambda: [lines.append(orjson.loads(raw)) for raw in server.stderr])
        assert {"time", "level", "logger", "message"} <= set(lines[-1])

        # when Prometheus scrapes it, once the in-process switch is connected
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            response = requests.get(f"{base_url}/metrics", timeout=30)
            assert response.status_code == 200
            families = {f.name: f for f in text_string_to_metric_families(response.text)}
            if families["robocall_esl_connected"].samples[0].value == 1:
                break
            if time.monotonic() > deadline:
                pytest.fail("robocall_esl_connected never became 1")
            gevent.sleep(0.1)
        # then it finds robocall's metrics, the histogram among them
        assert "robocall_dispatch_delay_seconds" in families
        assert "robocall_lines_in_use" in families

        # and a browser at / is sent to the sign-in form
        home = requests.get(f"{base_url}/", allow_redirects=False, timeout=30)
        assert home.status_code == 303 and home.headers["location"].endswith("/login")
        assert 'name="key"' in requests.get(f"{base_url}/login", timeout=30).text
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()  # never leave a dialer running past its test
            server.wait(timeout=30)
            raise

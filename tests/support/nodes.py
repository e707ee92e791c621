"""``robocall serve`` as a child process: started on a database and a switch, killed with
SIGKILL to crash it, or stopped with SIGTERM. Used by the multi-node and crash tests and by
scripts/bench_crash.py (plain Python: no pytest here)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import gevent
import requests

from robocall.api.auth import API_KEY_HEADER
from robocall.store.repo import Repo
from tests.support import api_server
from tests.support.service import wait_for

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"robocall API on (http://[\d.]+:\d+)")


class ServeProcess:
    """One ``python -m robocall serve`` child on 127.0.0.1 (port chosen by the OS)."""

    def __init__(
        self,
        *,
        database_url: str,
        switch_url: str,
        node_id: str,
        data_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.switch_url = switch_url
        self.node_id = node_id
        self.data_dir = data_dir
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.log: deque[str] = deque(maxlen=400)
        self._reader: gevent.Greenlet | None = None

    def start(self, timeout: float = 60.0) -> ServeProcess:
        """Start the child and wait until its API listens (its dialer starts on its own)."""
        env = {**os.environ, "ROBOCALL_NODE_ID": self.node_id, **self.extra_env}
        env["PYTHONPATH"] = str(ROOT)
        self.base_url = ""
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "robocall", "serve",
                "--database", self.database_url,
                "--switch", self.switch_url,
                "--listen", "127.0.0.1:0",
                "--data-dir", str(self.data_dir),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = gevent.spawn(self._read, self.process)
        deadline = time.monotonic() + timeout
        while not self.base_url:
            if self.process.poll() is not None:
                raise RuntimeError(f"robocall serve exited: {self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"robocall serve did not listen in {timeout} s: {self.tail()}")
            gevent.sleep(0.02)
        return self

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        # Read to the end, always: a full pipe would stall the child's logging.
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            found = _LISTENING.search(line)
            if found:
                self.base_url = found.group(1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(list(self.log)[-lines:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no last writes (a crash)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def run_transfer_requests(
    nodes: list[ServeProcess], repo: Repo, org_id: str, key: str, calls_per_node: int, tag: str
) -> list[str]:
    """Post each node a request of ``calls_per_node`` calls, every one transferred to
    extension 1000, and wait until all of them completed; the request ids, node by node."""
    request_ids = []
    for index, node in enumerate(nodes):
        request_id = f"{tag}-{index}-{secrets.token_hex(3)}"
        body = {
            "requestId": request_id,
            "destinations": [{"phone": f"+658{index}00{i:04d}", "caller": "+6582674904"}
                             for i in range(calls_per_node)],
            "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
        }
        response = requests.post(f"{node.base_url}/v1/call", json=body,
                                 headers={API_KEY_HEADER: key}, timeout=30)
        assert response.status_code == 200, response.text
        request_ids.append(request_id)
    for request_id in request_ids:
        wait_for(lambda request_id=request_id: repo.request_status(
            org_id, request_id, limit=1).counts == {"completed": calls_per_node},
            f"request {request_id} completed")
    return request_ids


def serve_to_exit(
    database_url: str,
    switch_url: str,
    node_id: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``robocall serve`` that is expected to refuse to start: run to its exit (bounded), with
    its exit code and stderr."""
    environment = {**os.environ, "ROBOCALL_NODE_ID": node_id, "PYTHONPATH": str(ROOT),
                   **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "robocall", "serve", "--database", database_url,
         "--switch", switch_url, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )


def error_lines(stderr: str) -> list[str]:
    """The lines robocall's command line prints for an error (``robocall: ...``)."""
    return [line for line in stderr.splitlines() if line.startswith("robocall:")]


_ORIGINATES = ("bgapi originate ", "api originate ")


class OriginateCounter:
    """How many originates FakeSwitch has received so far, counted as they come (each call
    reads only what is new): a benchmark polling it often must not starve the switch it shares
    a process with, or the switch's own view of the pace is skewed."""

    def __init__(self, received: list[str]) -> None:
        self._received = received
        self._seen = 0
        self.count = 0

    def __call__(self) -> int:
        new = self._received[self._seen:]
        self._seen += len(new)
        self.count += sum(1 for raw in new if raw.startswith(_ORIGINATES))
        return self.count


def originates_by_number(received: list[str]) -> dict[str, int]:
    """How many times each number was originated, from FakeSwitch's record of the commands it
    received (``fake.received``): the switch's own account, not robocall's."""
    from robocall.testing.callees import parse_originate

    counts: dict[str, int] = {}
    for raw in received:
        line = raw.split("\n", 1)[0]
        for prefix in ("bgapi originate ", "api originate "):
            if line.startswith(prefix):
                number = parse_originate(line[len(prefix):]).dial.number
                counts[number] = counts.get(number, 0) + 1
    return counts


@contextlib.contextmanager
def fresh_database(like_url: str, directory: Path) -> Iterator[str]:
    """A new empty database of the same kind as ``like_url`` (dropped afterwards): child
    processes dispatch every organization's queued calls, so a test that starts them gets a
    database no other test has left calls in."""
    with api_server.fresh_database(api_server.backend_of(like_url), directory) as url:
        yield url

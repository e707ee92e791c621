"""``robocall demo``, the README's first command, run as a new user runs it: a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from robocall import demo

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_every_path_of_the_seed_flow_and_exits_0(tmp_path):
    # when the demo runs (FakeSwitch at 10x speed, its data kept in a directory of the test's)
    finished = subprocess.run(
        [sys.executable, "-m", "robocall", "demo", "--time-scale", "0.1",
         "--data-dir", str(tmp_path / "demo")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
    )
    # then it says every call did what its callee scripted, and shows each one
    assert finished.returncode == 0, finished.stdout + finished.stderr
    output = finished.stdout
    assert "demo OK" in output
    for destination, (status, digits, transfer) in demo.EXPECTED.items():
        row = next(line for line in output.splitlines() if f"│ {destination} │" in line)
        cells = [cell.strip() for cell in row.strip("│ ").split("│")]
        assert cells[1:4] == [status, digits, transfer], row
    assert "completed: 6 calls (completed 4 · failed 2)" in output
    # and the service really ran on SQLite in the data directory it was given
    assert (tmp_path / "demo" / "robocall.db").stat().st_size > 0


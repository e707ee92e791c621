"""``robocall serve`` refusing to start: one line on stderr and exit 2 for every setting that
cannot work (docs/cli.md), never a traceback — run as a user runs it, in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from robocall.cli import EXIT_USAGE
from tests.integration.test_api_cli import REPO_ROOT


def _serve(*args: str, database: str, data_dir: Path, **env: str
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robocall", "serve", "--database", database,
         "--data-dir", str(data_dir), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--listen", "127.0.0.1:70000", "--switch", "fake"), {},
         "--listen '127.0.0.1:70000': the port must be 0 to 65535"),
        (("--listen", "127.0.0.1", "--switch", "fake"), {},
         "--listen '127.0.0.1': expected HOST:PORT"),
        (("--listen", "192.0.2.1:8080", "--switch", "fake"), {},
         "--listen 192.0.2.1:8080: cannot listen there: "),
        (("--listen", "127.0.0.1:0", "--switch", "esl://localhost:8021"), {},
         "--switch 'esl://localhost:8021': expected fake or esl://:PASSWORD@HOST:PORT"),
        (("--listen", "127.0.0.1:0", "--switch", "esl://:pw@localhost:port"), {},
         "--switch 'esl://:pw@localhost:port': the port is not a number"),
        (("--listen", "127.0.0.1:0", "--switch", "fake"),
         {"ROBOCALL_DIAL_TEMPLATE": "sofia/gateway/{gateway}/{number"},
         "ROBOCALL_DIAL_TEMPLATE='sofia/gateway/{gateway}/{number'"),
        (("--listen", "127.0.0.1:0", "--switch", "fake"),
         {"ROBOCALL_WEBHOOK_ALLOW_NETWORKS": "10.0.0.0/8,localnet"},
         "ROBOCALL_WEBHOOK_ALLOW_NETWORKS: 'localnet' is not a network"),
    ],
)
def test_a_setting_that_cannot_work_is_one_line_and_exit_2(
    database_url: str, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
):
    done = _serve(*args, database=database_url, data_dir=tmp_path / "data", **env)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.startswith("robocall: configuration error: ")
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_port_in_use_is_one_line_and_exit_2(
    database_url: str, tmp_path: Path, taken_port: int
):
    done = _serve("--listen", f"127.0.0.1:{taken_port}", "--switch", "fake",
                  database=database_url, data_dir=tmp_path / "data")
    assert done.returncode == EXIT_USAGE
    assert done.stderr.startswith(
        f"robocall: configuration error: --listen 127.0.0.1:{taken_port}: cannot listen there: "
        "Address already in use"
    )
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_data_directory_that_cannot_be_made_is_one_line_and_exit_2(
    database_url: str, tmp_path: Path
):
    # given a data directory below a regular file
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _serve("--listen", "127.0.0.1:0", "--switch", "fake",
                  database=database_url, data_dir=blocker / "data")
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.startswith("robocall: configuration error: cannot start: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_database_that_cannot_be_reached_is_one_line_and_exit_2(tmp_path: Path):
    # given a PostgreSQL URL where nothing listens (the driver's message spans two lines)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _serve("--listen", "127.0.0.1:0", "--switch", "fake",
                  database=f"postgresql://postgres@127.0.0.1:{port}/robocall",
                  data_dir=tmp_path / "data")
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.startswith("robocall: configuration error: cannot start: ")
    assert "Connection refused" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr

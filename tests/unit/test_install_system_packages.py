"""scripts/install-system-packages waits for another install's dpkg/apt lock instead of failing.

Runs the real script with a PATH of stand-ins: no TTS tools (so it has packages to install),
``id`` saying root, and an ``apt-get`` that reports the lock held for its first calls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-system-packages"
LOCK_MESSAGE = ("E: Could not get lock /var/lib/dpkg/lock-frontend. "
                "It is held by process 4242 (apt-get)")
APT_GET = f"""#!/bin/bash
count=$(<"$STUB_DIR/count")
echo $((count + 1)) > "$STUB_DIR/count"
if [ "$count" -lt "$LOCKED_CALLS" ]; then
    echo "{LOCK_MESSAGE}" >&2
    exit 100
fi
if [ -n "${{APT_ERROR:-}}" ]; then
    echo "$APT_ERROR" >&2
    exit 100
fi
echo "$*" >> "$STUB_DIR/calls"
"""


def _run(tmp_path: Path, locked_calls: int, wait_seconds: int = 60,
         apt_error: str = "") -> tuple[subprocess.CompletedProcess[str], list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for tool in ("grep", "sleep", "head", "env"):
        found = shutil.which(tool)
        assert found, tool
        (stubs / tool).symlink_to(found)
    (stubs / "id").write_text("#!/bin/bash\necho 0\n")
    (stubs / "apt-get").write_text(APT_GET)
    for stub in ("id", "apt-get"):
        (stubs / stub).chmod(0o755)
    (tmp_path / "count").write_text("0")
    environment = {
        "PATH": str(stubs), "STUB_DIR": str(tmp_path), "LOCKED_CALLS": str(locked_calls),
        "APT_ERROR": apt_error, "ROBOCALL_APT_LOCK_WAIT": str(wait_seconds),
        "ROBOCALL_APT_LOCK_POLL": "0.1", "HOME": os.environ.get("HOME", "/tmp"),
    }
    result = subprocess.run(["/bin/bash", str(SCRIPT)], env=environment, capture_output=True,
                            text=True, timeout=60)
    calls = tmp_path / "calls"
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_it_waits_for_the_lock_saying_what_it_waits_for(tmp_path: Path) -> None:
    # given another install holding the lock for apt-get's first three attempts
    result, calls = _run(tmp_path, locked_calls=3)
    # then it waited, said for what and who holds it, and installed once the lock was free
    assert result.returncode == 0, result.stderr
    assert "waiting for the dpkg/apt lock" in result.stderr
    assert "held by process 4242 (apt-get)" in result.stderr
    assert result.stderr.count("waiting for the dpkg/apt lock") == 1  # said once, not per poll
    assert calls[0] == "update -qq"
    assert calls[1].startswith("install -y -qq flite espeak-ng sox")


def test_it_gives_up_after_the_bound_and_says_how_to_wait_longer(tmp_path: Path) -> None:
    # given a lock that is never released, and a one-second bound
    result, calls = _run(tmp_path, locked_calls=10_000, wait_seconds=1)
    # then it fails, with apt's own message and the way to wait longer
    assert result.returncode == 1
    assert LOCK_MESSAGE in result.stderr
    assert "gave up after 1s waiting for the dpkg/apt lock" in result.stderr
    assert "ROBOCALL_APT_LOCK_WAIT" in result.stderr
    assert calls == []


def test_any_other_apt_failure_fails_at_once(tmp_path: Path) -> None:
    # given apt-get failing for another reason than the lock
    result, calls = _run(tmp_path, locked_calls=0, apt_error="E: Unable to locate package flite")
    # then it stops at the first attempt with apt's message
    assert result.returncode == 1
    assert "E: Unable to locate package flite" in result.stderr
    assert "waiting" not in result.stderr
    assert (tmp_path / "count").read_text().strip() == "1"

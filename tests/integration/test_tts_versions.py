"""The engines' versions (part of every cache key) are asked once per process, however many
greenlets ask first at the same time."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import gevent
import pytest

from robocall.tts.render import SOX, engine_version
from robocall.tts.voices import FLITE


def counting_wrapper(directory: Path, program: str, log: Path) -> None:
    """Put ``program`` on a PATH of its own: it notes each start in ``log``, then runs the real
    program (so the answer is the installed engine's own)."""
    real = shutil.which(program)
    assert real is not None, f"{program} is not installed"
    script = directory / program
    script.write_text(f'#!/bin/sh\necho "$$" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("program", [FLITE, SOX])
def test_a_hundred_concurrent_first_callers_start_one_process(
    program: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a process that has not asked the engine's version yet, and a PATH that notes starts
    starts = tmp_path / "starts.log"
    counting_wrapper(tmp_path, program, starts)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    engine_version.cache_clear()
    try:
        # when 100 greenlets ask at once
        askers = [gevent.spawn(engine_version, program) for _ in range(100)]
        gevent.joinall(askers, raise_error=True)
        # then one process was started, and every caller got its answer
        assert len(starts.read_text().splitlines()) == 1
        answers = {asker.value for asker in askers}
        assert len(answers) == 1
        assert any(character.isdigit() for character in answers.pop())  # a version number
    finally:
        engine_version.cache_clear()  # the next test asks the real PATH again

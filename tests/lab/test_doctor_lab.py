"""``robocall doctor`` against the real lab FreeSWITCH (marker ``lab``): every module robocall
needs is loaded there, and a wrong password is reported as refused, not as unreachable.

The FakeSwitch tests (tests/integration/test_cli_doctor.py) hold the same commands; this one
checks that FreeSWITCH answers ``module_exists`` the way FakeSwitch does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from robocall.cli import main
from robocall.cli.doctor import REQUIRED_MODULES
from tests.lab.conftest import LabSwitch

pytestmark = pytest.mark.lab


def _switch_url(lab: LabSwitch, password: str) -> str:
    return f"esl://:{password}@{lab.host}:{lab.port}"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    assert main(["migrate", "--data-dir", str(directory)]) == 0
    return directory


def test_the_lab_switch_has_every_module_robocall_needs(lab_switch, data_dir, capsys,
                                                         monkeypatch):
    # given messages fetched over HTTP, so mod_http_cache is needed as well
    monkeypatch.setenv("ROBOCALL_TTS_BASE_URL", "http://127.0.0.1:8080")
    code = main(["doctor", "--data-dir", str(data_dir),
                 "--switch", _switch_url(lab_switch, lab_switch.password)])
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert code == 0, lines
    assert any(line.startswith("ok FreeSWITCH:") and "FreeSWITCH Version 1.11.1" in line
               for line in lines)
    for module in [*REQUIRED_MODULES, "mod_http_cache"]:
        assert f"ok module {module}: loaded" in lines


def test_a_wrong_password_is_refused_by_the_lab_switch(lab_switch, data_dir, capsys):
    code = main(["doctor", "--data-dir", str(data_dir),
                 "--switch", _switch_url(lab_switch, "not-the-password")])
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert any(line.startswith("FAIL FreeSWITCH:") and "refused the password: -ERR invalid"
               in line for line in lines)

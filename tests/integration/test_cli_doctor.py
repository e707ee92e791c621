"""``robocall doctor`` against real parts: a SQLite file, FakeSwitch over TCP, the TTS engines.

FakeSwitch answers ``module_exists`` as FreeSWITCH does; a test takes a module away from it
to see the doctor name the module and how to load it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from robocall.cli import main
from robocall.store.db import open_database
from robocall.store.migrations import MIGRATIONS
from robocall.testing import FakeSwitch


@pytest.fixture
def fake() -> Iterator[FakeSwitch]:
    switch = FakeSwitch().start()
    yield switch
    switch.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose SQLite database has been migrated with the command line."""
    directory = tmp_path / "data"
    assert main(["migrate", "--data-dir", str(directory)]) == 0
    return directory


def doctor(*args: str) -> int:
    return main(["doctor", *args])


def _lines(output: str) -> list[str]:
    return [" ".join(line.split()) for line in output.splitlines()]


def test_a_ready_machine_passes_every_check(fake, data_dir, capsys):
    code = doctor("--data-dir", str(data_dir), "--switch", fake.url)
    lines = _lines(capsys.readouterr().out)
    assert code == 0, lines
    current = f"schema {MIGRATIONS[-1][0]} (current)"
    assert any(line.startswith("ok database: sqlite:///") and current in line for line in lines)
    assert any(line.startswith("ok FreeSWITCH: 127.0.0.1:") and "FreeSWITCH Version 1.11.1"
               in line for line in lines)
    for module in ("mod_sofia", "mod_dptools", "mod_commands", "mod_event_socket",
                   "mod_sndfile", "mod_native_file", "mod_tone_stream"):
        assert f"ok module {module}: loaded" in lines
    assert not any("mod_http_cache" in line for line in lines)  # no TTS base URL: not needed
    assert "ok TTS render (en): said 'robocall is ready'" in lines
    assert any(line.startswith("ok recordings: ") for line in lines)
    assert lines[-1] == "all checks passed"


def test_a_missing_module_is_named_with_how_to_load_it(fake, data_dir, capsys):
    # given a FreeSWITCH without mod_sndfile
    fake.switch.modules.discard("mod_sndfile")
    code = doctor("--data-dir", str(data_dir), "--switch", fake.url)
    lines = _lines(capsys.readouterr().out)
    assert code == 1
    assert "FAIL module mod_sndfile: not loaded (needed for playing and recording .wav files)" \
        in lines
    assert ("fix: add <load module=\"mod_sndfile\"/> to autoload_configs/modules.conf.xml, "
            "then `fs_cli -x 'load mod_sndfile'`") in lines
    assert lines[-1] == "1 check(s) failed"


def test_mod_http_cache_is_required_when_messages_are_fetched_over_http(
    fake, data_dir, capsys, monkeypatch
):
    # given FreeSWITCH fetches messages from robocall's HTTP server, and has no mod_http_cache
    monkeypatch.setenv("ROBOCALL_TTS_BASE_URL", "http://127.0.0.1:8080")
    fake.switch.modules.discard("mod_http_cache")
    code = doctor("--data-dir", str(data_dir), "--switch", fake.url)
    lines = _lines(capsys.readouterr().out)
    assert code == 1
    assert any(line.startswith("FAIL module mod_http_cache: not loaded") for line in lines)


def test_a_wrong_password_is_told_apart_from_an_unreachable_switch(fake, data_dir, capsys):
    wrong = fake.url.replace(":ClueCon@", ":NotClueCon@")
    assert doctor("--data-dir", str(data_dir), "--switch", wrong) == 1
    refused = _lines(capsys.readouterr().out)
    assert any(line.startswith("FAIL FreeSWITCH: 127.0.0.1:") and "refused" in line
               for line in refused)
    assert any("use the password of event_socket.conf.xml" in line for line in refused)
    # nor are modules asked about without a connection
    assert not any(line.startswith(("ok module", "FAIL module")) for line in refused)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nobody = f"esl://:ClueCon@127.0.0.1:{port}"
    assert doctor("--data-dir", str(data_dir), "--switch", nobody) == 1
    unreachable = _lines(capsys.readouterr().out)
    expected = f"FAIL FreeSWITCH: cannot reach the Event Socket at 127.0.0.1:{port}"
    assert any(line.startswith(expected) for line in unreachable)
    assert any("start FreeSWITCH with mod_event_socket loaded" in line for line in unreachable)


def test_a_fake_switch_setting_is_reported_not_failed(data_dir, capsys):
    assert doctor("--data-dir", str(data_dir), "--switch", "fake") == 0
    assert any(line.startswith("ok FreeSWITCH: switch is 'fake'")
               for line in _lines(capsys.readouterr().out))


def test_a_database_that_was_never_migrated_says_to_migrate(tmp_path, capsys):
    # given no database file, then an empty one
    data_dir = tmp_path / "fresh"
    assert doctor("--data-dir", str(data_dir)) == 1
    missing = _lines(capsys.readouterr().out)
    assert any(line.startswith("FAIL database: no SQLite file at ") for line in missing)
    assert any("run `robocall migrate --database sqlite:///" in line for line in missing)

    database = open_database(f"sqlite:///{data_dir / 'robocall.db'}")
    database.connect()
    database.execute_sql("CREATE TABLE unrelated (x INTEGER)")  # a file, but no schema
    database.close()
    assert doctor("--data-dir", str(data_dir)) == 1
    empty = _lines(capsys.readouterr().out)
    behind = f"is at schema 0, robocall needs {MIGRATIONS[-1][0]}"
    assert any(line.startswith("FAIL database:") and behind in line for line in empty)


def test_an_unreachable_postgresql_is_reported(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://robocall:secret@127.0.0.1:{port}/robocall"
    assert doctor("--database", url, "--data-dir", str(tmp_path)) == 1
    output = capsys.readouterr().out
    assert f"cannot open postgresql://127.0.0.1:{port}/robocall" in " ".join(output.split())
    assert "secret" not in output


def test_a_data_dir_that_is_a_file_fails_the_directory_checks(data_dir, tmp_path, capsys):
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    database = f"sqlite:///{data_dir / 'robocall.db'}"
    assert doctor("--database", database, "--data-dir", str(not_a_directory)) == 1
    lines = _lines(capsys.readouterr().out)
    assert any(line.startswith("FAIL recordings: ") and "is not a directory" in line
               for line in lines)
    assert any(line.startswith("FAIL message cache: ") for line in lines)

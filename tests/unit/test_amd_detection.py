"""The recording command detection hands the originate (the switch runs it at the answer)."""

from __future__ import annotations

from pathlib import Path

from robocall.amd.detection import CallDetection, DetectionSettings

CALL = "60291065-f067-4c03-9890-339c7b6aae33"


class _NoSwitch:
    def api(self, command: str) -> str:  # never called before the answer
        raise AssertionError(command)


def _detection(directory: Path) -> CallDetection:
    return CallDetection(_NoSwitch(), CALL, f"c-1-{CALL}", lambda finding: None,
                         DetectionSettings(directory=directory))


def test_the_start_command_records_the_read_leg_into_a_directory_made_before_the_dial(
        tmp_path: Path) -> None:
    # When the originate asks for the command
    command = _detection(tmp_path / "amd").start_command()

    # Then it records the callee's side, bounded by the longest greeting, where robocall reads
    assert command == (f"uuid_record {CALL} start {tmp_path}/amd/c-1-{CALL}.wav 65 "
                       "{RECORD_READ_ONLY=true,enable_file_write_buffering=false}")
    assert (tmp_path / "amd").is_dir()


def test_a_directory_robocall_cannot_make_does_not_stop_the_call(tmp_path: Path) -> None:
    # Given a "directory" below a file
    (tmp_path / "file").write_text("")

    # Then the command is still given (the switch may be able to write there)
    assert "start" in _detection(tmp_path / "file" / "amd").start_command()

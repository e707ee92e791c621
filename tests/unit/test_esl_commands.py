"""Every ESL command robocall sends, as the exact wire text, and every injection it refuses."""

from __future__ import annotations

import pytest

from robocall.errors import UnsafeValue
from robocall.esl import commands
from tests.support import transcripts

CALL = "60291065-f067-4c03-9890-339c7b6aae33"
JOB = "158fd90c-648b-49e4-adc1-f4de36b2f0ad"


def recorded_commands(name: str) -> list[str]:
    return [sent.raw.decode() for sent in transcripts.load(name).sent()]


def test_auth() -> None:
    assert commands.auth("ClueCon") == "auth ClueCon\n\n"


def test_event_subscription_is_what_the_runner_and_the_line_book_read() -> None:
    # the recorded subscription, less the events nothing in robocall reads, plus park, the
    # switch's heartbeat and its shutdown
    recorded = recorded_commands("esl-pipelined-commands.txt")[1].split()[2:]
    unread = {"CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_UNBRIDGE", "DTMF",
              "CHANNEL_EXECUTE", "CHANNEL_DESTROY", "PLAYBACK_START", "PLAYBACK_STOP",
              "RECORD_START", "RECORD_STOP"}
    wire = commands.event_json()
    expected = [name for name in recorded if name not in unread] + ["HEARTBEAT", "SHUTDOWN"]
    expected.insert(expected.index("CHANNEL_ANSWER") + 1, "CHANNEL_PARK")
    assert wire == f"event json {' '.join(expected)}\n\n"


def test_api_and_bgapi_frames() -> None:
    assert commands.api("status") == "api status\n\n"
    assert commands.bgapi("status", JOB) == f"bgapi status\nJob-UUID: {JOB}\n\n"


def test_originate_is_the_recorded_bgapi_originate() -> None:
    # given the originate recorded against the real FreeSWITCH
    recorded = recorded_commands("esl-pipelined-commands.txt")[7]

    # when robocall builds the same call
    text = commands.originate(
        uuid=CALL,
        dial_string="sofia/internal/1000@127.0.0.1:5074",
        caller_id_number="6582674904",
        timeout_seconds=15,
        line_variable=("accountcode", "org-test"),
        call_id="c-123",
        request_id="request_10",
    )

    # then the wire bytes are the recorded ones
    assert commands.bgapi(text, JOB) == recorded
    assert text == (
        "originate {origination_uuid=60291065-f067-4c03-9890-339c7b6aae33,"
        "origination_caller_id_number=6582674904,originate_timeout=15,ignore_early_media=true,"
        "accountcode=org-test,robocall_call_id=c-123,robocall_request_id=request_10}"
        "sofia/internal/1000@127.0.0.1:5074 &park()"
    )


def test_sendmsg_execute_is_the_recorded_one() -> None:
    recorded = recorded_commands("esl-transcript.txt")[4]
    wire = commands.sendmsg_execute(
        "ae6c553c-0f83-41db-bebf-88de761ec0cd",
        "speak",
        "flite|slt|Hello. This is a robo call test from Free Switch.",
        "ca9e9a17-391f-40c9-9b22-b7b7773e72a3",
    )
    assert wire == recorded


def test_sendmsg_execute_without_event_lock() -> None:
    recorded = recorded_commands("esl-pipelined-commands.txt")[11]
    wire = commands.sendmsg_execute(
        "d3111d08-baf5-49ed-ab53-dcb0d53e019c",
        "playback",
        "tone_stream://%(1000,0,440);loops=2",
        "7799c7ba-1c27-4b77-b73d-a83e6947e66e",
        event_lock=False,
    )
    assert wire == recorded


def test_sendmsg_hangup_is_the_recorded_one() -> None:
    recorded = recorded_commands("esl-pipelined-commands.txt")[13]
    assert commands.sendmsg_hangup("d3111d08-baf5-49ed-ab53-dcb0d53e019c") == recorded
    assert commands.sendmsg_hangup(CALL, "USER_BUSY") == (
        f"sendmsg {CALL}\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"
    )


def test_api_command_texts() -> None:
    assert commands.uuid_kill(CALL) == f"uuid_kill {CALL}"
    assert commands.uuid_kill(CALL, "NORMAL_CLEARING") == f"uuid_kill {CALL} NORMAL_CLEARING"
    assert commands.uuid_exists(CALL) == f"uuid_exists {CALL}"
    assert commands.show_channels_json() == "show channels as json"
    assert commands.uuid_getvar(CALL, "pagd_digits") == f"uuid_getvar {CALL} pagd_digits"


def test_read_leg_recording_commands() -> None:
    # The callee's side only, bounded, with the variable scoped to this one recording
    assert commands.uuid_record_read_leg(CALL, "/var/amd/7.wav", 40) == (
        f"uuid_record {CALL} start /var/amd/7.wav 40 "
        "{RECORD_READ_ONLY=true,enable_file_write_buffering=false}"
    )
    assert commands.uuid_record_stop(CALL, "/var/amd/7.wav") == (
        f"uuid_record {CALL} stop /var/amd/7.wav"
    )
    assert commands.uuid_break_all(CALL) == f"uuid_break {CALL} all"
    with pytest.raises(UnsafeValue):
        commands.uuid_record_read_leg(CALL, "/tmp/a b.wav", 40)  # FreeSWITCH splits on spaces
    with pytest.raises(UnsafeValue):
        commands.uuid_record_read_leg(CALL, "/tmp/a.wav", 0)
    assert commands.exit_command() == "exit\n\n"


def test_originate_carries_the_read_leg_recording_the_switch_starts_at_answer() -> None:
    # Given the read-leg recording command of a call
    record = commands.uuid_record_read_leg(CALL, "/var/amd/c-1.wav", 65)

    # When the originate carries it as api_on_answer
    text = commands.originate(
        uuid=CALL, dial_string="sofia/internal/+6580000010@127.0.0.1:5090",
        caller_id_number="6582674904", timeout_seconds=15, call_id="c-1", request_id="r-1",
        api_on_answer=record,
    )

    # Then it is the block's last variable, quoted (the originate api splits on spaces) and
    # its commas escaped (the block splits at commas), as the lab switch accepted it
    assert text == (
        f"originate {{origination_uuid={CALL},origination_caller_id_number=6582674904,"
        "originate_timeout=15,ignore_early_media=true,robocall_call_id=c-1,"
        f"robocall_request_id=r-1,api_on_answer='uuid_record {CALL} start /var/amd/c-1.wav 65 "
        "{RECORD_READ_ONLY=true\\,enable_file_write_buffering=false}'}"
        "sofia/internal/+6580000010@127.0.0.1:5090 &park()"
    )


@pytest.mark.parametrize("command", [
    "uuid_record x start /a'b.wav 5",  # a quote would end the quoted value
    "uuid_record x start /a\\,b.wav 5",  # a backslash escapes what follows
    "uuid_record x start /a.wav 5 {A=1}}",  # an extra brace would end the {...} block
    "uuid_record x start /a.wav 5 {A=1",
    "uuid_record x start ${path} 5",  # expanded by the switch at answer
    "uuid_record x start /a.wav 5\nevent plain ALL",
])
def test_api_on_answer_refuses_what_would_leave_its_place(command: str) -> None:
    with pytest.raises(UnsafeValue):
        commands.api_on_answer_variable(command)


def test_play_and_get_digits_argument_in_the_apps_order() -> None:
    arg = commands.play_and_get_digits_arg(
        min_digits=1,
        max_digits=4,
        tries=1,
        timeout_ms=12000,
        terminators="#",
        prompt="/var/cache/robocall/ab12.wav",
        invalid_prompt="/var/cache/robocall/cd34.wav",
        variable="pagd_digits",
        digits_regex="^(1|2)$",
        digit_timeout_ms=3000,
    )
    assert arg == (
        "1 4 1 12000 # '/var/cache/robocall/ab12.wav' '/var/cache/robocall/cd34.wav' "
        "pagd_digits ^(1|2)$ 3000"
    )


INJECTIONS = [
    pytest.param("a,b", id="comma"),
    pytest.param("a{b", id="open brace"),
    pytest.param("a}b", id="close brace"),
    pytest.param("${sofia_contact(x)}", id="variable expansion"),
    pytest.param("a'b", id="single quote"),
    pytest.param("a\nUnique-ID: x", id="newline"),
    pytest.param("a\rb", id="carriage return"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a b", id="space"),
    pytest.param("", id="empty"),
]


def _originate_with(**overrides: object) -> str:
    values: dict[str, object] = {
        "uuid": CALL,
        "dial_string": "sofia/internal/1000@127.0.0.1:5070",
        "caller_id_number": "6582674904",
        "timeout_seconds": 30,
        "line_variable": ("accountcode", "org-x"),
        "call_id": "c-1",
        "request_id": "r-1",
    }
    values.update(overrides)
    return commands.originate(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(
    "field", ["uuid", "dial_string", "caller_id_number", "line_variable", "call_id", "request_id"]
)
def test_originate_refuses_every_value_that_could_inject(field: str, value: str) -> None:
    unsafe = ("accountcode", value) if field == "line_variable" else value
    with pytest.raises(UnsafeValue):
        _originate_with(**{field: unsafe})


def test_originate_refuses_a_variable_name_that_is_not_a_name() -> None:
    with pytest.raises(UnsafeValue):
        _originate_with(line_variable=("account=code", "x"))


@pytest.mark.parametrize("timeout", [0, -1, 100_000])
def test_originate_refuses_a_timeout_out_of_range(timeout: int) -> None:
    with pytest.raises(UnsafeValue):
        _originate_with(timeout_seconds=timeout)


@pytest.mark.parametrize(
    "arg",
    [
        pytest.param("/tmp/a.wav\nEvent-UUID: forged", id="newline forges a header"),
        pytest.param("/tmp/a.wav\r\n", id="carriage return"),
        pytest.param("/tmp/${hack}.wav", id="variable expansion"),
        pytest.param("", id="empty"),
    ],
)
def test_execute_arg_is_one_header_line(arg: str) -> None:
    with pytest.raises(UnsafeValue):
        commands.sendmsg_execute(CALL, "playback", arg, JOB)


@pytest.mark.parametrize(
    ("builder", "bad"),
    [
        pytest.param(lambda v: commands.sendmsg_execute(v, "playback", "x", JOB), "a b", id="uuid"),
        pytest.param(lambda v: commands.sendmsg_execute(CALL, v, "x", JOB), "play back", id="app"),
        pytest.param(
            lambda v: commands.sendmsg_execute(CALL, "playback", "x", v), "x\ny", id="event"
        ),
        pytest.param(lambda v: commands.sendmsg_hangup(CALL, v), "NORMAL\nX: y", id="cause"),
        pytest.param(lambda v: commands.uuid_kill(v), f"{CALL} NORMAL", id="kill uuid"),
        pytest.param(lambda v: commands.uuid_getvar(CALL, v), "a b", id="getvar name"),
        pytest.param(lambda v: commands.bgapi("status", v), "j\nk", id="job uuid"),
        pytest.param(lambda v: commands.api(v), "status\n\napi x", id="api newline"),
        pytest.param(lambda v: commands.auth(v), "pw\n\napi x", id="password"),
        pytest.param(lambda v: commands.event_json([v]), "ALL\nx", id="event name"),
        pytest.param(
            lambda v: commands.play_and_get_digits_arg(
                min_digits=1,
                max_digits=1,
                tries=3,
                timeout_ms=5000,
                terminators="#",
                prompt=v,
                invalid_prompt="/tmp/b.wav",
                variable="pagd_digits",
                digits_regex="^1$",
                digit_timeout_ms=3000,
            ),
            "/tmp/a.wav' 'x",
            id="prompt quote",
        ),
    ],
)
def test_other_builders_refuse_unsafe_values(builder, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnsafeValue):
        builder(bad)

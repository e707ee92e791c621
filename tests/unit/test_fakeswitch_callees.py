"""Callee scripts, the callee file format, and how dial strings name the callee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robocall.errors import ConfigError
from robocall.testing import Callee, CalleeBook, Press
from robocall.testing.callees import (
    parse_dial_string,
    parse_originate,
    person,
    split_variables,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "fakeswitch-callees.md"


@pytest.mark.parametrize(("dial", "number"), [
    ("sofia/gateway/robocall/+6580000001", "+6580000001"),
    ("{a=1,b=2}sofia/gateway/robocall/+6580000001", "+6580000001"),
    ("user/1000@pbx.example", "1000"),
    ("sofia/internal/+6580000001@127.0.0.1:5090", "+6580000001"),
    ("sofia/internal/%2B6580000001@127.0.0.1:5090", "+6580000001"),
    ("sofia/internal/sip:1000@127.0.0.1:5070", "1000"),
    ("loopback/1000", "1000"),
])
def test_dialled_number(dial: str, number: str) -> None:
    # Then the callee's number is found in each kind of dial string
    assert parse_dial_string(dial).number == number


def test_originate_argument_splits_variables_dial_string_and_destination() -> None:
    # Given a robocall originate argument
    argument = ("{origination_uuid=u-1,accountcode=org-1,robocall_call_id=c-1,"
                "originate_timeout=15}sofia/gateway/robocall/+6580000001 &park()")

    # When it is parsed
    parsed = parse_originate(argument)

    # Then the variables, endpoint and destination are apart
    assert parsed.dial.variables == {"origination_uuid": "u-1", "accountcode": "org-1",
                                     "robocall_call_id": "c-1", "originate_timeout": "15"}
    assert parsed.dial.endpoint == "sofia/gateway/robocall/+6580000001"
    assert parsed.dial.channel_name == "sofia/gateway/robocall/%2B6580000001"
    assert parsed.destination == "&park()"


def test_originate_argument_is_split_as_freeswitch_splits_it() -> None:
    # Given an originate whose last variable is a quoted api command with braces and an
    # escaped comma (robocall's api_on_answer, as the lab switch read it)
    argument = ("{origination_uuid=u-1,api_on_answer='uuid_record u-1 start /r/a.wav 65 "
                "{RECORD_READ_ONLY=true\\,enable_file_write_buffering=false}'}"
                "sofia/internal/+6580000010@127.0.0.1:5090 &park()")

    # When it is parsed
    parsed = parse_originate(argument)

    # Then the quotes kept the spaces together and are gone, the inner braces did not end the
    # block, and the escaped comma is a comma of the value
    assert parsed.dial.variables == {
        "origination_uuid": "u-1",
        "api_on_answer": "uuid_record u-1 start /r/a.wav 65 "
                         "{RECORD_READ_ONLY=true,enable_file_write_buffering=false}"}
    assert parsed.dial.number == "+6580000010"
    assert parsed.destination == "&park()"
    # and an unquoted space splits the argument, as it does in FreeSWITCH
    assert parse_originate("{a=b c}sofia/x/1 &park()").dial.endpoint == "{a=b"


def test_a_block_may_choose_its_separator() -> None:
    # Then ^^<c> at the start of a block splits it at <c>, leaving commas in values
    assert split_variables("^^;a=1,2;b=3") == {"a": "1,2", "b": "3"}


def test_variables_honour_quotes_and_escaped_commas() -> None:
    # Then quoted and escaped commas stay inside a value
    assert split_variables("a='x,y',b=1\\,2,c=") == {"a": "x,y", "b": "1,2", "c": ""}


def test_book_lookup_by_endpoint_then_number_then_default() -> None:
    # Given callees keyed by an exact endpoint, by number, and a default
    busy = Callee(outcome="busy")
    answers_late = Callee(answer_after_ms=500)
    book = CalleeBook({"sofia/internal/1000@127.0.0.1:5071": busy, "+6580000001": answers_late},
                      default=Callee(outcome="no_answer"))

    # Then each lookup finds the most specific script
    assert book.lookup("1000", "sofia/internal/1000@127.0.0.1:5071") is busy
    assert book.lookup("6580000001") is answers_late
    assert book.lookup("1000", "sofia/internal/1000@127.0.0.1:5070").outcome == "no_answer"


def test_dtmf_schedule_spreads_multi_digit_presses() -> None:
    # Given a callee pressing "12#" at 1 s, 200 ms apart, and "9" at 1.1 s
    callee = Callee(presses=(Press(1000, "12#", gap_ms=200), Press(1100, "9")))

    # Then the digits come in time order
    assert callee.dtmf_schedule() == [(1000, "1"), (1100, "9"), (1200, "2"), (1400, "#")]


def test_bad_scripts_are_config_errors() -> None:
    # Then an unknown outcome, a non-DTMF key or an unknown field is refused
    with pytest.raises(ConfigError):
        Callee(outcome="maybe")
    with pytest.raises(ConfigError):
        Callee(presses=(Press(0, "x"),))
    with pytest.raises(ConfigError):
        CalleeBook.from_dict({"callees": {"1": {"answer_after": 5}}})


def test_from_file_reads_the_documented_example(tmp_path: Path) -> None:
    # Given the example from docs/fakeswitch-callees.md
    text = DOC.read_text()
    example = text.split("```json", 1)[1].split("```", 1)[0]
    path = tmp_path / "callees.json"
    path.write_text(example)

    # When it is read
    book = CalleeBook.from_file(path)

    # Then every documented behaviour is there
    data = json.loads(example)
    assert set(book.callees) == set(data["callees"])
    assert book.lookup("+6580000001").dtmf_schedule()[0] == (1500, "1")
    assert book.lookup("+6580000004").refusal == ("USER_BUSY", 486)
    assert book.lookup("+6580000006").hangup_after_ms == 1000
    assert book.default.answer_after_ms == data["default"]["answer_after_ms"]


def test_from_file_names_the_file_when_broken(tmp_path: Path) -> None:
    # Given a file that is not JSON
    path = tmp_path / "broken.json"
    path.write_text("{nope")

    # Then the error names it
    with pytest.raises(ConfigError, match="broken.json"):
        CalleeBook.from_file(path)


@pytest.mark.parametrize(("number", "key"), [
    ("+84912860330", "1"), ("+6580000004", "1"), ("+84917660247", "0"), ("+6580000005", "0"),
])
def test_people_answer_press_one_key_at_every_menu_and_hang_up(number: str, key: str) -> None:
    # Given the default world's callee of a number (its last digit says who answers)
    callee = person(number)

    # Then they answer, press their key a moment into each menu prompt, and hang up in time
    assert callee.outcome == "answer" and callee.answer_after_ms > 0
    assert callee.prompt_schedule(1) == [(2500, key)]
    assert callee.prompt_schedule(3) == [(2500, key)]
    assert callee.dtmf_schedule() == []  # nothing pressed before a menu asks
    assert callee.hangup_after_ms is not None
    # and the same number is the same person every time
    assert person(number) == callee


def test_people_who_only_listen_and_people_who_are_busy() -> None:
    listener = person("+6580000008")
    assert listener.outcome == "answer" and listener.presses == ()
    assert listener.hangup_after_ms is not None
    assert person("+6580000009").refusal == ("USER_BUSY", 486)


@pytest.mark.parametrize(("number", "endpoint"), [
    ("1000", "user/1000@127.0.0.1"), ("1000", "sofia/internal/1000@127.0.0.1:5070"),
    ("+6580000008", "user/+6580000008@pbx.example"),
])
def test_extensions_answer_talk_a_little_and_hang_up(number: str, endpoint: str) -> None:
    callee = person(number, endpoint)
    assert callee.outcome == "answer" and callee.presses == ()
    assert callee.hangup_after_ms is not None and callee.hangup_after_ms <= 10_000


def test_a_book_without_a_default_gives_people_for_unlisted_numbers() -> None:
    # Given a callee file that scripts one number and no default
    book = CalleeBook.from_dict({"callees": {"+6580000001": {"outcome": "busy"}}})

    # Then that number is as scripted and every other one is a person
    assert book.lookup("+6580000001").outcome == "busy"
    assert book.lookup("+84917660247") == person("+84917660247")
    assert book.lookup("1000", "user/1000@127.0.0.1") == person("1000", "user/1000@127.0.0.1")
    assert CalleeBook.people().lookup("+6580000009").outcome == "busy"
    # while a book built with a default keeps it
    assert CalleeBook().lookup("+6580000009") == Callee()

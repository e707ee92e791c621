"""Callee scripts, the callee file format, and how dial strings name the callee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robocall.errors import ConfigError
from robocall.testing import Callee, CalleeBook, Press
from robocall.testing.callees import parse_dial_string, parse_originate, split_variables

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

"""FakeSwitch's event filters follow mod_event_socket 1.11.1 (event_handler and the ``filter``
command of parse_command), and robocall's filters let through what it reads."""

from __future__ import annotations

import pytest

from robocall.dispatch.lines import LineBook, LineRule, event_filters
from robocall.esl import commands
from robocall.testing import events
from robocall.testing.server import passes_filters


def _event(name: str, **headers: str) -> events.Event:
    return events.Event(name, [("Event-Name", name), *headers.items()])


CHANNEL = _event("CHANNEL_ANSWER", **{"Unique-ID": "u1", "variable_accountcode": "Org-A"})
JOB = _event("BACKGROUND_JOB", **{"Job-UUID": "j1"})


def test_no_filters_let_everything_through() -> None:
    assert passes_filters([], CHANNEL)
    assert passes_filters([], JOB)


@pytest.mark.parametrize(("filters", "expected"), [
    # exact values are compared without case, header names looked up without case
    ([("variable_accountcode", "org-a")], True),
    ([("VARIABLE_ACCOUNTCODE", "Org-A")], True),
    ([("variable_accountcode", "org-b")], False),
    # positive filters are OR'ed; a filter on a header the event lacks is skipped
    ([("Job-UUID", "j1"), ("variable_accountcode", "org-b")], False),
    ([("variable_accountcode", "org-b"), ("Event-Name", "CHANNEL_ANSWER")], True),
    # regex values start with '/', are searched for (not anchored), flags after the last '/'
    ([("variable_accountcode", "/rg-/")], True),
    ([("variable_accountcode", "/^rg-/")], False),
    ([("variable_accountcode", "/^org-a$/")], False),
    ([("variable_accountcode", "/^org-a$/i")], True),
    ([("variable_accountcode", "/./")], True),
    ([("variable_accountcode", "/no closing slash")], False),
    # '+'/'-' and spaces before the value set the sign and are not compared
    ([("variable_accountcode", "+Org-A")], True),
    ([("variable_accountcode", " + Org-A")], True),
    # a negative match drops the event whatever the order; negatives alone pass nothing
    ([("Event-Name", "CHANNEL_ANSWER"), ("variable_accountcode", "-Org-A")], False),
    ([("variable_accountcode", "-Org-A"), ("Event-Name", "CHANNEL_ANSWER")], False),
    ([("variable_accountcode", "-Org-B")], False),
    ([("variable_accountcode", "-Org-B"), ("Unique-ID", "u1")], True),
    # a '-' before a '/' is a plain value: "-/x/" compares with the text "/x/"
    ([("Unique-ID", "u1"), ("variable_accountcode", "-/Org/")], True),
])
def test_filter_semantics(filters: list[tuple[str, str]], expected: bool) -> None:
    assert passes_filters(filters, CHANNEL) is expected


def test_events_without_the_filtered_headers_are_dropped() -> None:
    # BACKGROUND_JOB and HEARTBEAT carry no channel header: a channel filter drops them
    assert not passes_filters([("Unique-ID", "u1")], JOB)
    assert passes_filters([("Unique-ID", "u1"), ("Event-Name", "BACKGROUND_JOB")], JOB)


def test_robocall_filters_let_through_what_the_line_book_counts() -> None:
    # Given two organizations' rules and robocall's filters from them
    rules = [LineRule("accountcode", "org-a"), LineRule("sip_gateway_name", "trunk-b")]
    filters = event_filters(rules)
    book = LineBook(clock=lambda: 0.0)
    book.set_rule("a", rules[0])
    book.set_rule("b", rules[1])
    samples = [
        _event("CHANNEL_CREATE", **{"Unique-ID": "robo", "variable_robocall_call_id": "7"}),
        _event("CHANNEL_CREATE", **{"Unique-ID": "pbx", "variable_accountcode": "org-a"}),
        _event("CHANNEL_CREATE", **{"Unique-ID": "gw", "variable_sip_gateway_name": "trunk-b"}),
        _event("CHANNEL_CREATE", **{"Unique-ID": "other", "variable_accountcode": "org-z"}),
        _event("CHANNEL_CREATE", **{"Unique-ID": "callee"}),
        _event("HEARTBEAT", **{"Idle-CPU": "90"}),
        _event("SHUTDOWN"),
    ]
    # Then every event that counts a line or that robocall reads passes, and only those
    passed = [e.get("Unique-ID") or e.name for e in samples if passes_filters(filters, e)]
    assert passed == ["robo", "pbx", "gw", "HEARTBEAT", "SHUTDOWN"]
    for event in samples:
        if book.observe(dict(event.headers)) is not None:
            assert passes_filters(filters, event)


def test_robocall_filters_drop_the_completion_of_park_and_keep_the_others() -> None:
    # Given robocall's filters and a robo leg's completions: its playback's, then at hangup
    # the park() the originate left it in
    filters = event_filters([LineRule("accountcode", "org-a")])
    robo = {"Unique-ID": "robo", "variable_robocall_call_id": "7"}
    playback = _event("CHANNEL_EXECUTE_COMPLETE", Application="playback", **robo)
    park = _event("CHANNEL_EXECUTE_COMPLETE", Application="park", **robo)
    hangup = _event("CHANNEL_HANGUP_COMPLETE", **robo)
    # Then the switch sends the playback's and the hangup, not park's (nor an org line's)
    assert passes_filters(filters, playback) and passes_filters(filters, hangup)
    assert not passes_filters(filters, park)
    line_park = _event("CHANNEL_EXECUTE_COMPLETE", Application="park",
                       **{"Unique-ID": "pbx", "variable_accountcode": "org-a"})
    assert not passes_filters(filters, line_park)


def test_values_the_switch_would_misread_become_a_broad_filter() -> None:
    # a leading sign, space or slash would change the filter's meaning
    for value in ("-neg", "+pos", " sp", "/re/"):
        assert commands.filter_value(value) == commands.ANY_VALUE
    assert commands.filter_value("org-a") == "org-a"
    many = [LineRule("accountcode", f"org-{n}") for n in range(100)]
    assert ("variable_accountcode", commands.ANY_VALUE) in event_filters(many)
    assert len(event_filters(many)) == len(event_filters([])) + 1

"""The line book counts an organization's live channels from real FreeSWITCH events."""

from __future__ import annotations

import json

from robocall.dispatch.lines import LineBook, LineRule, LineUsage
from tests.support import transcripts

ORG_TEST = "org-test"
ORG_OTHER = "org-other"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recorded_events(name: str) -> list[dict[str, str]]:
    transcript = transcripts.load(name)
    return [
        json.loads(frame.body)
        for frame in transcript.frames()
        if frame.headers.get("Content-Type") == "text/event-json"
    ]


def book_for_both_orgs(clock: FakeClock | None = None) -> LineBook:
    book = LineBook(clock=clock or FakeClock())
    book.set_rule(ORG_TEST, LineRule("accountcode", ORG_TEST))
    book.set_rule(ORG_OTHER, LineRule("accountcode", ORG_OTHER))
    return book


def test_recorded_calls_are_counted_per_organization_including_the_ringing_one():
    # given the recorded session: answered calls of org-test and org-other, a ringing org-test
    events = recorded_events("esl-line-counting.txt")
    book = book_for_both_orgs()
    # when the events up to the third CHANNEL_CREATE (and its progress) are observed
    creates = [i for i, e in enumerate(events) if e["Event-Name"] == "CHANNEL_CREATE"]
    assert len(creates) == 3
    for event in events[: creates[2] + 1]:
        book.observe(event)
    # then org-test has two lines in use (the ringing one counts) and org-other one
    assert book.usage(ORG_TEST) == LineUsage(robo=2, other=0)
    assert book.usage(ORG_OTHER) == LineUsage(robo=1, other=0)


def test_hangups_release_lines_and_report_the_organization():
    events = recorded_events("esl-line-counting.txt")
    book = book_for_both_orgs()
    released: list[str] = []
    for event in events:
        organization = book.observe(event)
        if organization and event["Event-Name"] == "CHANNEL_HANGUP_COMPLETE":
            released.append(organization)
    # then every line is free at the end, and each hangup named its organization once
    assert book.usage(ORG_TEST).total == 0
    assert book.usage(ORG_OTHER).total == 0
    assert sorted(released) == [ORG_OTHER, ORG_TEST, ORG_TEST]


def test_a_channel_without_robocall_marker_counts_as_another_app():
    book = book_for_both_orgs()
    book.observe(
        {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u1", "variable_accountcode": ORG_TEST}
    )
    assert book.usage(ORG_TEST) == LineUsage(robo=0, other=1)


def test_line_variable_set_after_create_is_picked_up_from_a_later_event():
    book = book_for_both_orgs()
    assert book.observe({"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u1"}) is None
    changed = book.observe(
        {"Event-Name": "CHANNEL_EXECUTE", "Unique-ID": "u1", "variable_accountcode": ORG_TEST}
    )
    assert changed == ORG_TEST
    assert book.usage(ORG_TEST).other == 1


def test_events_after_release_do_not_resurrect_the_channel():
    book = book_for_both_orgs()
    base = {"Unique-ID": "u1", "variable_accountcode": ORG_TEST}
    book.observe({**base, "Event-Name": "CHANNEL_CREATE"})
    book.observe({**base, "Event-Name": "CHANNEL_HANGUP_COMPLETE"})
    book.observe({**base, "Event-Name": "CHANNEL_DESTROY"})
    book.observe({**base, "Event-Name": "CHANNEL_EXECUTE_COMPLETE"})
    assert book.usage(ORG_TEST).total == 0


def test_reconcile_drops_settled_channels_missing_from_the_listing_but_keeps_young_ones():
    clock = FakeClock()
    book = book_for_both_orgs(clock)
    book.observe(
        {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "old", "variable_accountcode": ORG_TEST}
    )
    clock.now += 10
    book.observe(
        {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "new", "variable_accountcode": ORG_TEST}
    )
    # when the listing shows neither (one ended unseen; the other is not in the table yet)
    changed = book.reconcile([])
    # then only the settled one is released
    assert changed == {ORG_TEST}
    assert book.channel_ids(ORG_TEST) == {"new"}


def test_reconcile_adds_listed_channels_by_accountcode_and_ignores_recently_ended():
    clock = FakeClock()
    book = book_for_both_orgs(clock)
    book.observe({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": "gone"})
    rows = [
        {"uuid": "missed", "accountcode": ORG_OTHER},
        {"uuid": "gone", "accountcode": ORG_OTHER},  # ended, still in the async table
        {"uuid": "ringing", "accountcode": ""},  # column empty until it runs an app
        {"uuid": "robo", "accountcode": ORG_TEST},
    ]
    changed = book.reconcile(rows, is_robo=lambda unique_id: unique_id == "robo")
    assert changed == {ORG_OTHER, ORG_TEST}
    assert book.usage(ORG_OTHER) == LineUsage(robo=0, other=1)
    assert book.usage(ORG_TEST) == LineUsage(robo=1, other=0)


def test_recorded_listing_reconciles_to_the_event_count():
    # given the book built from events up to the 'show channels' query
    transcript = transcripts.load("esl-line-counting.txt")
    listing = next(
        json.loads(f.body)
        for f in transcript.frames()
        if f.headers.get("Content-Type") == "api/response" and b'"row_count":3' in f.body
    )
    events = recorded_events("esl-line-counting.txt")
    creates = [i for i, e in enumerate(events) if e["Event-Name"] == "CHANNEL_CREATE"]
    clock = FakeClock()
    book = book_for_both_orgs(clock)
    for event in events[: creates[2] + 2]:
        book.observe(event)
    clock.now += 60
    # when reconciled with the real listing (the ringing row has an empty accountcode)
    changed = book.reconcile(listing["rows"])
    # then nothing changes: the listing agrees with the events
    assert changed == set()
    assert book.usage(ORG_TEST).total == 2
    assert book.usage(ORG_OTHER).total == 1


def test_changing_a_rule_moves_future_matches():
    book = LineBook(clock=FakeClock())
    book.set_rule(ORG_TEST, LineRule("accountcode", "a"))
    book.set_rule(ORG_TEST, LineRule("sip_gateway_name", "trunk1"))
    assert (
        book.observe(
            {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "x", "variable_accountcode": "a"}
        )
        is None
    )
    assert (
        book.observe(
            {
                "Event-Name": "CHANNEL_CREATE",
                "Unique-ID": "y",
                "variable_sip_gateway_name": "trunk1",
            }
        )
        == ORG_TEST
    )

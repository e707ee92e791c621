"""robocall's own ESL client (robocall.esl) against FakeSwitch: the two halves meet on TCP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import gevent
import pytest

from robocall.esl import commands
from robocall.esl.client import EslClient
from robocall.esl.protocol import Event
from robocall.testing import Callee, CalleeBook, FakeSwitch, Press

WAIT = 10.0


@pytest.fixture
def fake() -> Iterator[FakeSwitch]:
    book = CalleeBook({"+6580000001": Callee(presses=(Press(1500, "2"),)),
                       "+6580000004": Callee(outcome="busy", ring=False)})
    switch = FakeSwitch(book, time_scale=0.05).start()
    yield switch
    switch.stop()


@pytest.fixture
def client(fake: FakeSwitch) -> Iterator[EslClient]:
    esl = EslClient("127.0.0.1", fake.port, "ClueCon", backoff_initial=0.05)
    esl.connect()
    yield esl
    esl.close()


def _originate(client: EslClient, number: str) -> tuple[str, str]:
    leg = str(uuid.uuid4())
    client.channel_queue(leg)
    job = client.bgapi(commands.originate(
        uuid=leg, dial_string=f"sofia/gateway/robocall/{number}", caller_id_number="6582674904",
        timeout_seconds=15, line_variable=("accountcode", "org-1"), call_id="c-1",
        request_id="r-1"))
    return leg, job.wait(WAIT)


def _until(client: EslClient, leg: str, name: str) -> Event:
    queue = client.channel_queue(leg)
    while True:
        event = queue.get(timeout=WAIT)
        if isinstance(event, Event) and event.name == name:
            return event


def test_gather_through_the_real_client(client: EslClient) -> None:
    # Given an answered, parked call whose callee presses 2
    leg, result = _originate(client, "+6580000001")
    _until(client, leg, "CHANNEL_PARK")

    # When robocall's builders gather one digit
    argument = commands.play_and_get_digits_arg(
        min_digits=1, max_digits=1, tries=2, timeout_ms=3000, terminators="#",
        prompt="silence_stream://500", invalid_prompt="silence_stream://200",
        variable="pagd_digits", digits_regex="^[12]$", digit_timeout_ms=2000)
    complete = client.execute(leg, "play_and_get_digits", argument).wait(WAIT)

    # Then the client's execution resolves with the digit
    assert result == f"+OK {leg}\n"
    assert complete.headers["variable_pagd_digits"] == "2"
    assert client.show_channels()[0]["accountcode"] == "org-1"


def test_busy_through_the_real_client(client: EslClient) -> None:
    # When a busy number is dialled
    leg, result = _originate(client, "+6580000004")

    # Then the job result is the recorded -ERR text
    assert result == "-ERR USER_BUSY\n"
    assert _until(client, leg, "CHANNEL_HANGUP_COMPLETE").headers["Hangup-Cause"] == "USER_BUSY"


def test_client_reconnects_after_the_fake_drops_it(fake: FakeSwitch, client: EslClient) -> None:
    # Given a connected client
    client.api("status")

    # When the fake cuts every connection
    fake.drop_connections()
    while client.connected:
        gevent.sleep(0.01)
    client.wait_connected(WAIT)

    # Then the client is back and the fake saw it authenticate twice
    assert client.api("uuid_exists nothing") == "false"
    assert sum(1 for c in fake.received if c.startswith("auth ")) == 2

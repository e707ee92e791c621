"""FakeSwitch's Event Socket behaviour, seen from a client over real TCP on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from robocall.testing import Callee, CalleeBook, FakeSwitch
from tests.support import transcripts
from tests.support.eslwire import EslWire

EVENTS = ("CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_ANSWER CHANNEL_PARK CHANNEL_HANGUP "
          "CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE "
          "BACKGROUND_JOB DTMF PLAYBACK_START PLAYBACK_STOP")


@pytest.fixture
def fake() -> Iterator[FakeSwitch]:
    book = CalleeBook({"+6580000006": Callee(hangup_after_ms=1000)})
    switch = FakeSwitch(book, time_scale=0.02).start()
    yield switch
    switch.stop()


@pytest.fixture
def client(fake: FakeSwitch) -> Iterator[EslWire]:
    wire = EslWire(fake.address)
    wire.login(events=EVENTS)
    yield wire
    wire.close()


def test_greeting_and_right_password(fake: FakeSwitch) -> None:
    # Given a fresh connection
    wire = EslWire(fake.address)

    # When the client authenticates with the password
    greeting = wire.read()
    reply = wire.command("auth ClueCon")

    # Then it was greeted with auth/request and accepted, byte for byte as recorded
    recorded = transcripts.load("esl-transcript.txt").frames()
    assert greeting.raw == recorded[0].raw
    assert reply.raw == recorded[1].raw
    wire.close()


def test_wrong_password_is_refused_and_disconnected(fake: FakeSwitch) -> None:
    # Given a fresh connection
    wire = EslWire(fake.address)
    wire.read()

    # When the client sends a wrong password
    reply = wire.command("auth wrong")

    # Then FreeSWITCH's refusal comes back and the connection is closed
    assert reply.raw == b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
    with pytest.raises(EOFError):
        wire.read()
    wire.close()


def test_unknown_command_and_exit_texts(client: EslWire) -> None:
    # When the client sends an unknown command and then exit
    unknown = client.command("foo bar")
    bye = client.command("exit")
    notice = client.read()

    # Then the replies are the recorded ones and the connection ends
    recorded = [f.raw for f in transcripts.load("esl-pipelined-commands.txt").frames()]
    assert unknown.raw in recorded
    assert bye.raw == recorded[-2]
    assert notice.raw == recorded[-1]
    with pytest.raises(EOFError):
        client.read()


def test_event_plain_subscription_frames_plain_events(fake: FakeSwitch) -> None:
    # Given a client subscribed with `event plain` to CHANNEL_CREATE only
    wire = EslWire(fake.address)
    wire.login()
    reply = wire.command("event plain CHANNEL_CREATE")

    # When a call is originated
    wire.command("api originate {origination_uuid=p1}sofia/gateway/gw/+6580000001 &park()")
    event = wire.wait_event("CHANNEL_CREATE", "p1")

    # Then the listener was enabled in plain, and the event came plain with decoded values
    assert reply.headers["Reply-Text"] == "+OK event listener enabled plain"
    assert event["Channel-Name"] == "sofia/gateway/gw/%2B6580000001"
    assert {f.content_type for f in wire.frames} >= {"text/event-plain"}
    assert "text/event-json" not in {f.content_type for f in wire.frames}
    wire.close()


def test_only_subscribed_events_are_sent(fake: FakeSwitch) -> None:
    # Given a client subscribed to BACKGROUND_JOB only
    wire = EslWire(fake.address)
    wire.login(events="BACKGROUND_JOB")

    # When a call is originated in the background and answered
    wire.command("bgapi originate {origination_uuid=s1}sofia/gateway/gw/+6580000001 &park()")
    job = wire.wait_event("BACKGROUND_JOB")

    # Then the job result is the only event the client received
    assert job["_body"] == "+OK s1\n"
    names = [e["Event-Name"] for e in wire.events()]
    assert names == ["BACKGROUND_JOB"]
    wire.close()


def test_api_blocks_events_until_its_reply(client: EslWire) -> None:
    # Given a call whose whole life (answer, callee hangup after 1 s) fits in a 10 s msleep
    client.send("bgapi originate {origination_uuid=b1}sofia/gateway/gw/+6580000006 &park()\n"
                "Job-UUID: job-1\n\napi msleep 10000\n\napi uptime\n\n")

    # When the replies are read
    replies = [client.read(), client.read(), client.read()]

    # Then the three replies come first, in order, and only then the call's events
    assert replies[0].headers["Reply-Text"] == "+OK Job-UUID: job-1"
    assert replies[1].body == b"+OK"
    assert replies[2].content_type == "api/response"
    destroy = client.wait_event("CHANNEL_DESTROY", "b1")
    assert destroy["variable_sip_hangup_disposition"] == "recv_bye"


def test_bgapi_without_job_uuid_gets_one_chosen(client: EslWire) -> None:
    # When bgapi carries no Job-UUID header
    reply = client.command("bgapi status")
    job_uuid = reply.headers["Job-UUID"]

    # Then the switch chose one and the BACKGROUND_JOB carries it with the status text
    job = client.wait_event("BACKGROUND_JOB")
    assert reply.headers["Reply-Text"] == f"+OK Job-UUID: {job_uuid}"
    assert job["Job-UUID"] == job_uuid
    assert job["_body"].startswith("UP 0 years")


def test_sendmsg_to_unknown_channel_is_refused(client: EslWire) -> None:
    # When a sendmsg names no live channel
    reply = client.command("sendmsg nope\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING")

    # Then it is refused as FreeSWITCH refuses it
    assert reply.headers["Reply-Text"] == "-ERR invalid session id [nope]"


def test_received_records_every_command(fake: FakeSwitch, client: EslWire) -> None:
    # When the client sends an api command
    client.command("api uptime")

    # Then the fake recorded the exact bytes of each command, in order
    assert fake.received[0] == "auth ClueCon\n\n"
    assert fake.received[-1] == "api uptime\n\n"
    assert fake.received[1].startswith("event json CHANNEL_CREATE")


def test_shutdown_as_recorded(fake: FakeSwitch) -> None:
    # Given a parked call watched by one connection and a second one subscribed to SHUTDOWN
    first = EslWire(fake.address)
    first.login(events=EVENTS)
    second = EslWire(fake.address)
    second.login(events="SHUTDOWN")
    first.command("bgapi originate {origination_uuid=d1}sofia/gateway/gw/+6580000001 &park()")
    first.wait_event("CHANNEL_PARK", "d1")

    # When the switch shuts down
    fake.shutdown()

    # Then the call ends with SYSTEM_SHUTDOWN, SHUTDOWN reaches its subscriber, and both
    # connections get the shutdown notice and then EOF (esl-shutdown.txt)
    hangup = first.wait_event("CHANNEL_HANGUP", "d1")
    first.wait_event("CHANNEL_DESTROY", "d1")
    recorded = transcripts.load("esl-shutdown.txt")
    for wire, conn in ((first, "conn1"), (second, "conn2")):
        with pytest.raises(EOFError):
            while True:
                wire.read()
        assert wire.frames[-1].raw == recorded.frames(conn)[-1].raw
    assert hangup["Hangup-Cause"] == "SYSTEM_SHUTDOWN"
    assert [e["Event-Name"] for e in second.events()] == ["SHUTDOWN"]
    assert second.events()[0]["Event-Info"] == "System Shutting Down"


def test_drop_connections_cuts_clients_but_calls_live_on(fake: FakeSwitch,
                                                        client: EslWire) -> None:
    # Given a parked call
    client.command("bgapi originate {origination_uuid=x1}sofia/gateway/gw/+6580000001 &park()")
    client.wait_event("CHANNEL_PARK", "x1")

    # When the fake drops every connection abruptly
    fake.drop_connections()

    # Then the client sees EOF, and a new connection still finds the call
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            client.read()
    again = EslWire(fake.address)
    again.login()
    assert again.command("api uuid_exists x1").body == b"true"
    again.close()


def test_a_listener_that_stops_reading_is_dropped() -> None:
    # Given a switch that drops listeners 20 events behind, and a client that never reads
    with FakeSwitch(CalleeBook(), time_scale=0.001, max_backlog=20) as fake:
        silent = socket.socket()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.connect(fake.address)
        silent.sendall(b"auth ClueCon\n\nevent json ALL\n\n")
        reader = EslWire(fake.address)
        reader.login(events="BACKGROUND_JOB")

        # When many calls raise far more events than the socket buffers hold
        for n in range(200):
            reader.command(f"bgapi originate {{origination_uuid=q{n}}}sofia/gateway/gw/+65800 "
                           "&park()")
        for _ in range(200):
            reader.wait_event("BACKGROUND_JOB")
        reader.command("api hupall NORMAL_CLEARING")
        reader.command("api msleep 100")

        # Then the silent listener was cut off, while the reading one is still served
        assert len(fake.connections) == 1
        assert reader.command("api uuid_exists q0").content_type == "api/response"
        silent.close()
        reader.close()


def test_filter_commands_as_freeswitch_answers_them(fake: FakeSwitch) -> None:
    # Given a client subscribed to channel events and jobs
    wire = EslWire(fake.address)
    wire.login(events="CHANNEL_CREATE CHANNEL_ANSWER BACKGROUND_JOB")

    # When it adds, deletes and mistypes filters (mod_event_socket 1.11.1's replies)
    replies = [wire.command(text).headers["Reply-Text"] for text in (
        "filter variable_robocall_call_id /./", "filter add Event-Name BACKGROUND_JOB",
        "filter Unique-ID", "filter Unique-ID x", "filter delete Unique-ID x",
    )]
    assert replies == [
        "+OK filter added. [variable_robocall_call_id]=[/./]",
        "+OK filter added. [Event-Name]=[BACKGROUND_JOB]",
        "-ERR invalid syntax",
        "+OK filter added. [Unique-ID]=[x]",
        "+OK filter deleted. [Unique-ID][x]",
    ]

    # Then a leg marked as robocall's passes, a leg without the mark does not, jobs do
    wire.command("bgapi originate {origination_uuid=f1,robocall_call_id=9}"
                 "sofia/gateway/gw/+6580000001 &park()\nJob-UUID: j1")
    wire.command("bgapi originate {origination_uuid=f2}sofia/gateway/gw/+6580000001 &park()"
                 "\nJob-UUID: j2")
    wire.wait_event("BACKGROUND_JOB", Job_UUID="j1")  # sent once the leg answered
    wire.wait_event("BACKGROUND_JOB", Job_UUID="j2")
    seen = [(e["Event-Name"], e.get("Unique-ID")) for e in wire.events()]
    assert ("CHANNEL_ANSWER", "f1") in seen
    assert not [unique_id for _, unique_id in seen if unique_id == "f2"]

    # When every filter is deleted, every subscribed event comes again
    assert wire.command("filter delete all").headers["Reply-Text"] == (
        "+OK filter deleted. [all][]"
    )
    wire.command("bgapi originate {origination_uuid=f3}sofia/gateway/gw/+6580000001 &park()")
    wire.wait_event("CHANNEL_ANSWER", "f3")
    wire.close()

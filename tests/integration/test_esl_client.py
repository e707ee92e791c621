"""EslClient over real TCP against a scripted server: commands, correlation and routing."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import gevent
import pytest

from robocall.errors import CommandFailed, SwitchAuthError, SwitchDisconnected, SwitchTimeout
from robocall.esl.client import EslClient
from robocall.esl.commands import event_json
from robocall.esl.protocol import Event
from tests.integration.esl_scripted_server import (
    Peer,
    ScriptedSwitch,
    api_response,
    json_event,
    recorded_events,
    reply,
)
from tests.support import transcripts

TRANSCRIPT_CALL = "ae6c553c-0f83-41db-bebf-88de761ec0cd"  # the call in esl-transcript.txt


@pytest.fixture
def switch() -> Iterator[ScriptedSwitch]:
    server = ScriptedSwitch()
    yield server
    server.close()


def connect(switch: ScriptedSwitch, **options: object) -> tuple[EslClient, Peer]:
    """A connected client and the server side of its connection, handshake done."""
    client = EslClient("127.0.0.1", switch.port, "ClueCon", **options)  # type: ignore[arg-type]
    server_side = gevent.spawn(lambda: (peer := switch.next_peer(), peer.handshake())[0])
    client.connect()
    return client, server_side.get(timeout=5)


@pytest.fixture
def connected(switch: ScriptedSwitch) -> Iterator[tuple[EslClient, Peer]]:
    client, peer = connect(switch, command_timeout=2.0)
    yield client, peer
    client.close()


def answer_in_background(peer: Peer, *frames: bytes) -> gevent.Greenlet:
    """Read one command, then send the frames in one write; the greenlet returns the command."""

    def serve() -> bytes:
        command = peer.read_command()
        peer.send(b"".join(frames))
        return command

    return gevent.spawn(serve)


def test_connect_authenticates_subscribes_and_disables_nagle(switch: ScriptedSwitch) -> None:
    # given a switch that accepts the password
    connected_calls: list[EslClient] = []
    client, peer = connect(switch, on_connected=connected_calls.append)

    # then the client sent the password and subscribed to every event robocall needs
    assert peer.received == [b"auth ClueCon\n\n", event_json().encode()]
    assert b"CHANNEL_PARK" in peer.received[1]
    assert client.connected
    gevent.sleep(0)
    assert connected_calls == [client]
    # and its socket sends small commands at once
    sock = client._session.commands.sock  # type: ignore[union-attr]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    client.close()


def test_a_refused_password_raises_switch_auth_error(switch: ScriptedSwitch) -> None:
    client = EslClient("127.0.0.1", switch.port, "wrong")
    gevent.spawn(lambda: switch.next_peer().handshake("ClueCon"))
    with pytest.raises(SwitchAuthError):
        client.connect()
    assert not client.connected


def test_nothing_listening_raises_switch_disconnected() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(SwitchDisconnected):
        EslClient("127.0.0.1", free_port, "ClueCon", connect_timeout=1.0).connect()


def test_api_returns_the_body_and_err_raises(connected: tuple[EslClient, Peer]) -> None:
    client, peer = connected
    server = answer_in_background(peer, api_response("UP 0 years\n"))
    assert client.api("status") == "UP 0 years\n"
    assert server.get() == b"api status\n\n"

    answer_in_background(peer, api_response("-ERR no such channel\n"))
    with pytest.raises(CommandFailed) as failure:
        client.api("uuid_getvar 00000000-0000 x")
    assert failure.value.reply == "-ERR no such channel"


def test_concurrent_commands_get_their_own_replies_in_order(
    connected: tuple[EslClient, Peer],
) -> None:
    # given three greenlets that send commands at once
    client, peer = connected
    callers = [gevent.spawn(client.api, f"echo {n}") for n in range(3)]

    # when the switch answers them strictly in order, in one write
    commands = [peer.read_command() for _ in range(3)]
    peer.send(b"".join(api_response(command.decode().split()[-1]) for command in commands))

    # then each caller gets the answer to its own command
    assert [caller.get(timeout=5) for caller in callers] == ["0", "1", "2"]


def test_a_late_reply_does_not_shift_later_replies(connected: tuple[EslClient, Peer]) -> None:
    # given a command whose reply comes after its caller gave up
    client, peer = connected
    with pytest.raises(SwitchTimeout):
        client.api("msleep 3000", timeout=0.2)
    peer.read_command()
    peer.send(api_response("+OK slept"))

    # when the next command is answered
    answer_in_background(peer, api_response("343"))

    # then it gets its own reply, not the late one
    assert client.api("uptime") == "343"


def test_bgapi_sends_the_chosen_job_uuid_and_waits_for_its_result(
    connected: tuple[EslClient, Peer],
) -> None:
    # given a switch that sends the job's result in the same write as the reply
    client, peer = connected
    job_uuid = "158fd90c-648b-49e4-adc1-f4de36b2f0ad"
    done = json_event({"Event-Name": "BACKGROUND_JOB", "Job-UUID": job_uuid}, "+OK abc\n")
    other = json_event({"Event-Name": "BACKGROUND_JOB", "Job-UUID": "other"}, "-ERR NO_ANSWER\n")
    server = answer_in_background(
        peer, reply(f"+OK Job-UUID: {job_uuid}", Job_UUID=job_uuid), other, done
    )

    # when robocall starts the job
    job = client.bgapi("originate {origination_uuid=abc}sofia/x &park()", job_uuid=job_uuid)

    # then the command carried the Job-UUID, and the result is the job's own body
    assert (
        server.get()
        == (
            f"bgapi originate {{origination_uuid=abc}}sofia/x &park()\nJob-UUID: {job_uuid}\n\n"
        ).encode()
    )
    assert job.wait(timeout=5) == "+OK abc\n"


def test_recorded_failed_originates_give_their_causes(connected: tuple[EslClient, Peer]) -> None:
    # given the three BACKGROUND_JOBs FreeSWITCH sent for failed originates
    client, peer = connected
    recorded = [
        event
        for event in recorded_events("esl-transcript-originate-failures.txt")
        if b"BACKGROUND_JOB" in event
    ]
    job_ids = [re.search(rb'"Job-UUID":"([^"]+)"', event)[1].decode() for event in recorded]  # type: ignore[index]

    jobs = []
    for job_id in job_ids:
        answer_in_background(peer, reply(f"+OK Job-UUID: {job_id}", Job_UUID=job_id))
        jobs.append(client.bgapi("originate x", job_uuid=job_id))
    # when they arrive (in the reverse order)
    peer.send(b"".join(reversed(recorded)))

    # then each job gets its own cause
    assert [job.wait(timeout=5).strip() for job in jobs] == [
        "-ERR USER_BUSY",
        "-ERR NO_ANSWER",
        "-ERR NORMAL_TEMPORARY_FAILURE",
    ]


def test_execute_waits_for_the_complete_of_its_own_event_uuid(
    connected: tuple[EslClient, Peer],
) -> None:
    # given the recorded events of a playback queued on a parked call (case 4 of the recording)
    client, peer = connected
    frames = transcripts.load("esl-pipelined-commands.txt").frames()
    call_events = [f.raw for f in frames if b"d3111d08-baf5-49ed-ab53-dcb0d53e019c" in f.raw]
    call_events = [raw for raw in call_events if raw.startswith(b"Content-Length")]
    server = answer_in_background(peer, reply("+OK"), *call_events)

    # when robocall runs the playback with its own Event-UUID
    execution = client.execute(
        "d3111d08-baf5-49ed-ab53-dcb0d53e019c",
        "playback",
        "tone_stream://%(1000,0,440);loops=2",
        event_uuid="7799c7ba-1c27-4b77-b73d-a83e6947e66e",
    )
    complete = execution.wait(timeout=5)

    # then it gets the playback's CHANNEL_EXECUTE_COMPLETE, not park's
    assert complete.name == "CHANNEL_EXECUTE_COMPLETE"
    assert complete.get("Application") == "playback"
    assert complete.get("Application-Response") == "FILE PLAYED"
    assert b"Event-UUID: 7799c7ba-1c27-4b77-b73d-a83e6947e66e\n" in server.get()


def test_an_execution_on_a_destroyed_channel_fails(connected: tuple[EslClient, Peer]) -> None:
    client, peer = connected
    answer_in_background(
        peer, reply("+OK"), json_event({"Event-Name": "CHANNEL_DESTROY", "Unique-ID": "call-1"})
    )
    execution = client.execute("call-1", "playback", "/tmp/a.wav")
    with pytest.raises(CommandFailed):
        execution.wait(timeout=5)


def test_hangup_and_show_channels(connected: tuple[EslClient, Peer]) -> None:
    client, peer = connected
    server = answer_in_background(peer, reply("+OK"))
    client.hangup("call-1", "USER_BUSY")
    assert server.get() == b"sendmsg call-1\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"

    answer_in_background(peer, api_response('{"row_count": 0}\n'))
    assert client.show_channels() == []

    rows = [{"uuid": "a", "accountcode": "org-test"}, {"uuid": "b", "accountcode": ""}]
    answer_in_background(peer, api_response(json.dumps({"row_count": 2, "rows": rows})))
    assert client.show_channels() == rows


def test_the_reader_survives_json_events_and_routes_them_by_unique_id(
    connected: tuple[EslClient, Peer],
) -> None:
    # given a call's queue registered before its originate, and a listener of every event
    client, peer = connected
    call_queue = client.channel_queue(TRANSCRIPT_CALL)
    everything: list[Event] = []
    client.add_event_listener(everything.append)

    # when the switch sends every event of the recorded call, then answers a command
    events = recorded_events("esl-transcript.txt")
    server = answer_in_background(peer, api_response("still here"))
    peer.send(b"".join(events))

    # then the reader is alive, every event reached the listener, and the call's own reached it
    assert client.api("status") == "still here"
    assert server.get() == b"api status\n\n"
    assert len(everything) == len(events)
    routed = [call_queue.get(timeout=5) for _ in range(call_queue.qsize())]
    assert routed == [e for e in everything if e.unique_id == TRANSCRIPT_CALL]
    assert [e.name for e in routed][:2] == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]


def test_an_encoded_newline_does_not_forge_a_unique_id(connected: tuple[EslClient, Peer]) -> None:
    # given two calls, and an event of call A whose variable smuggles call B's Unique-ID
    client, peer = connected
    queue_a, queue_b = client.channel_queue("call-a"), client.channel_queue("call-b")
    block = (
        b"Event-Name: DTMF\nUnique-ID: call-a\nDTMF-Digit: 1\n"
        b"variable_sip_from_display: x%0AUnique-ID%3A%20call-b%0ADTMF-Digit%3A%209\n\n"
    )
    frame = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(block) + block

    # when it arrives, followed by an ordinary event for B
    peer.send(frame + json_event({"Event-Name": "DTMF", "Unique-ID": "call-b", "DTMF-Digit": "2"}))

    # then A got its digit, and B only its own
    event_a = queue_a.get(timeout=5)
    assert (event_a.unique_id, event_a.get("DTMF-Digit")) == ("call-a", "1")
    event_b = queue_b.get(timeout=5)
    assert (event_b.unique_id, event_b.get("DTMF-Digit")) == ("call-b", "2")
    assert queue_a.empty() and queue_b.empty()


def test_a_plain_background_job_body_is_not_a_header(connected: tuple[EslClient, Peer]) -> None:
    client, peer = connected
    plain = [
        f.raw
        for f in transcripts.load("esl-transcript-plain.txt").frames()
        if b"Event-Name: BACKGROUND_JOB" in f.raw
    ][0]
    job_id = "34e68d36-c252-4c3a-972e-2c5f898aaf9c"
    answer_in_background(peer, reply(f"+OK Job-UUID: {job_id}", Job_UUID=job_id), plain)
    job = client.bgapi("originate x", job_uuid=job_id)
    assert job.wait(timeout=5) == "+OK 7da2bde9-a0d5-466a-882a-0f4b52d7306c\n"


def test_a_call_nobody_reads_does_not_hold_up_other_calls(
    connected: tuple[EslClient, Peer],
) -> None:
    # given call A, whose runner is stuck and never reads its queue, and call B's runner
    client, peer = connected
    stuck_queue = client.channel_queue("call-a")
    b_queue = client.channel_queue("call-b")
    b_runner = gevent.spawn(lambda: b_queue.get(timeout=10))

    # when far more than FreeSWITCH's 500-event listener limit arrives for A, then one for B
    flood = json_event({"Event-Name": "DTMF", "Unique-ID": "call-a", "DTMF-Digit": "1"}) * 2000
    peer.send(flood + json_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "call-b"}))

    # then B's runner gets its event and A's events all wait in A's queue
    assert b_runner.get(timeout=10).name == "CHANNEL_ANSWER"
    assert stuck_queue.qsize() == 2000


def test_a_released_channel_gets_no_more_events(connected: tuple[EslClient, Peer]) -> None:
    client, peer = connected
    queue = client.channel_queue("call-a")
    client.release_channel("call-a")
    seen: list[Event] = []
    client.add_event_listener(seen.append)
    peer.send(json_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "call-a"}))
    answer_in_background(peer, api_response("ok"))
    assert client.api("status") == "ok"
    assert [event.unique_id for event in seen] == ["call-a"]
    assert queue.empty()


def _issue(client: EslClient, sent: bytes) -> gevent.Greenlet:
    """Send one recorded command through the client's own API, in a greenlet of its own."""
    lines = sent.decode().rstrip("\n").split("\n")
    verb, _, rest = lines[0].partition(" ")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    if verb == "api":
        return gevent.spawn(client.api, rest)
    if verb == "bgapi":
        return gevent.spawn(lambda: client.bgapi(rest, fields["Job-UUID"]).wait(timeout=5))
    if fields["call-command"] == "hangup":
        return gevent.spawn(client.hangup, rest, fields["hangup-cause"])
    return gevent.spawn(
        lambda: client.execute(
            rest,
            fields["execute-app-name"],
            fields["execute-app-arg"],
            fields["Event-UUID"],
            event_lock="event-lock" in fields,
        ).wait(timeout=5)
    )


def test_a_recorded_pipelined_session_replays_through_the_client(
    connected: tuple[EslClient, Peer],
) -> None:
    # given the recorded session in which commands were written back to back (cases 3 and 4)
    client, peer = connected
    recording = transcripts.load("esl-pipelined-commands.txt")
    start = next(i for i, item in enumerate(recording.items) if b"msleep 3000" in item.raw) - 1
    items = [i for i in recording.items[start:] if i.raw != b"exit\n\n"]
    items = items[: next(n for n, i in enumerate(items) if b"+OK bye" in i.raw)]
    calls = {"60291065-f067-4c03-9890-339c7b6aae33", "d3111d08-baf5-49ed-ab53-dcb0d53e019c"}
    queues = {call: client.channel_queue(call) for call in calls}

    # when the client sends the same commands at once and the switch answers as it did
    issued = [_issue(client, item.raw) for item in items if isinstance(item, transcripts.Sent)]

    def play_switch() -> None:
        for item in items:
            if isinstance(item, transcripts.Sent):
                assert peer.read_command() == item.raw
            else:
                peer.send(item.raw)

    gevent.spawn(play_switch).get(timeout=10)

    # then every command got its own recorded outcome, in order
    outcomes = [greenlet.get(timeout=5) for greenlet in issued]
    assert outcomes[0] == "+OK 60291065-f067-4c03-9890-339c7b6aae33\n"  # bgapi originate
    assert outcomes[1:3] == ["+OK", "\n0 total.\n"]  # api msleep, api show channels count
    assert outcomes[3] == "+OK d3111d08-baf5-49ed-ab53-dcb0d53e019c\n"
    assert outcomes[4].get("Application-Response") == "FILE PLAYED"  # the playback's complete
    assert outcomes[5] == "org-test"  # uuid_getvar accountcode
    assert outcomes[6] is None  # hangup: +OK
    # and each call's queue holds its recorded events, from CHANNEL_CREATE to CHANNEL_DESTROY
    for queue in queues.values():
        names = [queue.get(timeout=5).name for _ in range(queue.qsize())]
        assert names[0] == "CHANNEL_CREATE" and names[-1] == "CHANNEL_DESTROY"

"""EslClient against a real FreeSWITCH with SIPp callees (marker `lab`).

Run with ROBOCALL_LAB_ESL=host:port:password (and ROBOCALL_LAB_DIAL for the scripted-callee
lab); skipped without it, failing loudly when it is set but unreachable.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import gevent.queue
import pytest

from robocall.esl import commands
from robocall.esl.client import DISCONNECTED, EslClient
from robocall.esl.protocol import Event
from tests.lab.conftest import LabSwitch

pytestmark = pytest.mark.lab


def originate(
    client: EslClient, dial_string: str, timeout_seconds: int = 15
) -> tuple[str, gevent.queue.Queue, str]:
    """Dial with a uuid we choose, its queue registered first; (uuid, queue, job result)."""
    call = str(uuid.uuid4())
    queue = client.channel_queue(call)
    text = commands.originate(
        uuid=call,
        dial_string=dial_string,
        caller_id_number="6582674904",
        timeout_seconds=timeout_seconds,
        line_variable=("accountcode", "org-lab"),
        call_id=f"c-{call[:8]}",
        request_id="request-lab",
    )
    result = client.bgapi(text).wait(timeout=timeout_seconds + 10)
    return call, queue, result


def wait_for(
    queue: gevent.queue.Queue, name: str, timeout: float = 20
) -> tuple[Event, list[Event]]:
    """Events off a call's queue up to the first ``name``; (that event, all seen)."""
    seen: list[Event] = []
    with gevent.Timeout(timeout, AssertionError(f"no {name} within {timeout} s")):
        while True:
            event = queue.get()
            assert event is not DISCONNECTED, "the connection dropped"
            seen.append(event)
            if event.name == name:
                return event, seen


def listed_eventually(client: EslClient, call: str, attempts: int = 50) -> bool:
    """Whether ``show channels`` lists the call within ``attempts`` tries 0.1 s apart."""
    for _ in range(attempts):
        if call in [row["uuid"] for row in client.show_channels()]:
            return True
        gevent.sleep(0.1)
    return False


def test_answered_call_parks_plays_and_hangs_up(
    lab_client: EslClient, sipp: Callable[[str], int]
) -> None:
    # given a callee that answers
    port = sipp("uas_answer.xml")

    # when robocall dials it
    call, queue, result = originate(lab_client, f"sofia/internal/1000@127.0.0.1:{port}")

    # then the job reports the call, which is answered and parked with robocall's variables
    assert result == f"+OK {call}\n"
    park, seen = wait_for(queue, "CHANNEL_PARK")
    assert "CHANNEL_ANSWER" in [event.name for event in seen]
    assert park.get("variable_robocall_call_id") == f"c-{call[:8]}"
    assert park.get("variable_accountcode") == "org-lab"
    # `show channels` reads FreeSWITCH's core db, written after the events (~0.1 s here)
    assert listed_eventually(lab_client, call)

    # and a tone and a silence play to their end, each found by its own Event-UUID
    tone = lab_client.execute(call, "playback", "tone_stream://%(500,0,440)")
    silence = lab_client.execute(call, "playback", "silence_stream://500")
    assert tone.wait(timeout=10).get("Application-Response") == "FILE PLAYED"
    assert silence.wait(timeout=10).get("Application-Data") == "silence_stream://500"

    # and hanging up ends the call with the cause robocall gave
    lab_client.hangup(call, "NORMAL_CLEARING")
    done, _ = wait_for(queue, "CHANNEL_HANGUP_COMPLETE")
    assert done.get("Hangup-Cause") == "NORMAL_CLEARING"
    assert done.get("variable_sip_hangup_disposition") == "send_bye"
    lab_client.release_channel(call)


def test_busy_callee(lab_client: EslClient, sipp: Callable[[str], int]) -> None:
    port = sipp("uas_busy.xml")
    call, queue, result = originate(lab_client, f"sofia/internal/1000@127.0.0.1:{port}")
    assert result.strip() == "-ERR USER_BUSY"
    done, _ = wait_for(queue, "CHANNEL_HANGUP_COMPLETE")
    assert done.get("Hangup-Cause") == "USER_BUSY"


def test_callee_that_never_answers(lab_client: EslClient, sipp: Callable[[str], int]) -> None:
    port = sipp("uas_noanswer.xml")
    call, queue, result = originate(
        lab_client, f"sofia/internal/1000@127.0.0.1:{port}", timeout_seconds=3
    )
    assert result.strip() == "-ERR NO_ANSWER"
    done, seen = wait_for(queue, "CHANNEL_HANGUP_COMPLETE")
    assert "CHANNEL_ANSWER" not in [event.name for event in seen]
    assert done.get("Hangup-Cause") == "NO_ANSWER"


def gather_digits(client: EslClient, call: str, timeout_ms: int) -> Event:
    arg = commands.play_and_get_digits_arg(
        min_digits=1,
        max_digits=4,
        tries=1,
        timeout_ms=timeout_ms,
        terminators="#",
        prompt="silence_stream://250",
        invalid_prompt="silence_stream://250",
        variable="pagd_digits",
        digits_regex="\\d+",
        digit_timeout_ms=3000,
    )
    return client.execute(call, "play_and_get_digits", arg).wait(timeout=timeout_ms / 1000 + 10)


def test_play_and_get_digits_receives_rfc2833_digits(
    lab_client: EslClient, sipp: Callable[[str], int]
) -> None:
    # given a callee that presses 1 2 3 # (RFC 2833) 6 s after it answered
    port = sipp("uas_dtmf_pcap.xml")
    call, queue, result = originate(lab_client, f"sofia/internal/1000@127.0.0.1:{port}")
    assert result.startswith("+OK")
    wait_for(queue, "CHANNEL_PARK")

    # when robocall gathers digits as soon as the call is parked
    complete = gather_digits(lab_client, call, timeout_ms=15000)

    # then it got 123, ended by #, and every key press was an event on the call's queue
    assert complete.get("variable_pagd_digits") == "123"
    assert complete.get("variable_read_result") == "success"
    lab_client.hangup(call)
    _, seen = wait_for(queue, "CHANNEL_HANGUP_COMPLETE")
    assert [e.get("DTMF-Digit") for e in seen if e.name == "DTMF"] == ["1", "2", "3", "#"]


class TcpRelay:
    """127.0.0.1 relay in front of the switch, so the test can cut the connection."""

    def __init__(self, target: LabSwitch) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.greenlets = [gevent.spawn(self._accept)]

    def _accept(self) -> None:
        while True:
            client_side, _ = self.listener.accept()
            switch_side = socket.create_connection((self.target.host, self.target.port))
            self.sockets += [client_side, switch_side]
            self.greenlets += [
                gevent.spawn(self._pump, client_side, switch_side),
                gevent.spawn(self._pump, switch_side, client_side),
            ]

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            sink.close()

    def cut(self) -> None:
        """Reset every relayed connection, as a broken link would."""
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()
        gevent.killall(self.greenlets)


@pytest.fixture
def relay(lab_switch: LabSwitch) -> Iterator[TcpRelay]:
    relay = TcpRelay(lab_switch)
    yield relay
    relay.close()


def test_a_cut_connection_reconnects_and_resubscribes(
    lab_switch: LabSwitch, relay: TcpRelay, sipp: Callable[[str], int]
) -> None:
    # given a client connected through a link that can be cut
    changes: gevent.queue.Queue = gevent.queue.Queue()
    client = EslClient(
        "127.0.0.1",
        relay.port,
        lab_switch.password,
        command_timeout=10,
        backoff_initial=0.1,
        on_connected=lambda _: changes.put("connected"),
        on_disconnected=lambda _: changes.put("disconnected"),
    )
    client.connect()
    try:
        assert changes.get(timeout=10) == "connected"
        assert client.api("status").startswith("UP ")

        # when the link is cut
        relay.cut()

        # then the client notices, reconnects, and is subscribed again: a new call's events arrive
        assert changes.get(timeout=10) == "disconnected"
        assert changes.get(timeout=20) == "connected"
        port = sipp("uas_answer.xml")
        call, queue, result = originate(client, f"sofia/internal/1000@127.0.0.1:{port}")
        assert result == f"+OK {call}\n"
        wait_for(queue, "CHANNEL_PARK")
        client.hangup(call)
        wait_for(queue, "CHANNEL_HANGUP_COMPLETE")
    finally:
        client.close()


def test_scripted_callees_busy_and_one_digit(
    lab_client: EslClient, lab_dial: Callable[[str], str]
) -> None:
    # given the scripted-callee lab: ..04 is busy, ..08 presses 1 once about 3.3 s after answer
    _, _, busy = originate(lab_client, lab_dial("04"))
    assert busy.strip() == "-ERR USER_BUSY"

    call, queue, result = originate(lab_client, lab_dial("08"))
    assert result.startswith("+OK")
    wait_for(queue, "CHANNEL_PARK")
    complete = gather_digits(lab_client, call, timeout_ms=8000)
    assert complete.get("variable_pagd_digits") == "1"
    lab_client.hangup(call)
    wait_for(queue, "CHANNEL_HANGUP_COMPLETE")

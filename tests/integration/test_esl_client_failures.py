"""EslClient when the connection goes wrong: each test is one of greenswitch's defects, absent.

docs/design.md ("The ESL client") lists them: the reader died on `event json`, a dropped connection
fired no handler and left commands blocked, send() had no timeout, a connection cut mid-frame spun
forever without yielding. The switch here is a real TCP server that drops, resets, stalls or sends
garbage on cue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import gevent
import gevent.event
import pytest

from robocall.errors import CommandFailed, SwitchDisconnected, SwitchTimeout
from robocall.esl.client import DISCONNECTED, EslClient
from tests.integration.esl_scripted_server import (
    Peer,
    ScriptedSwitch,
    api_response,
    recorded_events,
    reply,
)
from tests.support import transcripts

# Small backoff so a reconnect is quick; each test still waits for the reconnect by its event.
FAST = {"command_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05}


class Lifecycle:
    """Records the client's connected/disconnected callbacks, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.changed = gevent.event.Event()

    def connected(self, client: EslClient) -> None:
        self.calls.append("connected")
        self.changed.set()

    def disconnected(self, client: EslClient) -> None:
        self.calls.append("disconnected")
        self.changed.set()

    def wait_for(self, calls: list[str], timeout: float = 5.0) -> None:
        with gevent.Timeout(timeout):
            while self.calls != calls:
                self.changed.clear()
                self.changed.wait()


@pytest.fixture
def switch() -> Iterator[ScriptedSwitch]:
    server = ScriptedSwitch()
    yield server
    server.close()


@pytest.fixture
def lifecycle() -> Lifecycle:
    return Lifecycle()


@pytest.fixture
def connected(switch: ScriptedSwitch, lifecycle: Lifecycle) -> Iterator[tuple[EslClient, Peer]]:
    client = EslClient(
        "127.0.0.1",
        switch.port,
        "ClueCon",
        on_connected=lifecycle.connected,
        on_disconnected=lifecycle.disconnected,
        **FAST,  # type: ignore[arg-type]
    )
    server_side = gevent.spawn(switch.next_peer)
    gevent.spawn(lambda: server_side.get().handshake())
    client.connect()
    lifecycle.wait_for(["connected"])
    yield client, server_side.get()
    client.close()


class Ticker:
    """A greenlet that counts while the hub is free; a spinning reader would freeze it."""

    def __init__(self) -> None:
        self.ticks = 0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(0.001)
            self.ticks += 1

    def wait_for_ticks(self, count: int) -> None:
        start = self.ticks
        with gevent.Timeout(5):
            while self.ticks < start + count:
                gevent.sleep(0.001)

    def stop(self) -> None:
        self._greenlet.kill()


def command_in_flight(
    client: EslClient, peer: Peer, timeout: float | None = None
) -> gevent.Greenlet:
    """An ``api status`` the switch has read and not answered."""
    command = gevent.spawn(client.api, "status", timeout=timeout)
    peer.read_command()
    return command


def assert_fails_then_reconnects(
    command: gevent.Greenlet, switch: ScriptedSwitch, lifecycle: Lifecycle, client: EslClient
) -> None:
    with pytest.raises(SwitchDisconnected):
        command.get(timeout=5)
    reconnect(switch, lifecycle, client)


def reconnect(switch: ScriptedSwitch, lifecycle: Lifecycle, client: EslClient) -> Peer:
    peer = switch.next_peer()
    peer.handshake()
    lifecycle.wait_for(["connected", "disconnected", "connected"])
    client.wait_connected(timeout=5)
    return peer


def test_a_dropped_connection_fails_every_waiter_and_reconnects(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    # given a call's queue, a pending command, a started job and a started execution
    client, peer = connected
    call_queue = client.channel_queue("call-1")
    gevent.spawn(lambda: (peer.read_command(), peer.send(reply("+OK Job-UUID: j", Job_UUID="j"))))
    job = client.bgapi("originate x", job_uuid="j")
    gevent.spawn(lambda: (peer.read_command(), peer.send(reply("+OK"))))
    execution = client.execute("call-1", "playback", "/tmp/a.wav", event_uuid="e")
    command = command_in_flight(client, peer)

    # when the switch closes the connection without answering
    peer.close()

    # then every waiter fails at once, the call learns it may have missed events,
    with pytest.raises(SwitchDisconnected):
        command.get(timeout=5)
    with pytest.raises(SwitchDisconnected):
        job.wait(timeout=5)
    with pytest.raises(SwitchDisconnected):
        execution.wait(timeout=5)
    assert call_queue.get(timeout=5) is DISCONNECTED
    # the handler fired, and the client reconnected, re-authenticated and re-subscribed
    new_peer = reconnect(switch, lifecycle, client)
    assert new_peer.received[0] == b"auth ClueCon\n\n"
    assert new_peer.received[1].startswith(b"event json ")
    gevent.spawn(lambda: (new_peer.read_command(), new_peer.send(api_response("back"))))
    assert client.api("status") == "back"


def test_a_reset_connection_fails_the_pending_command(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    client, peer = connected
    command = command_in_flight(client, peer)
    peer.reset()
    assert_fails_then_reconnects(command, switch, lifecycle, client)


def test_a_connection_cut_mid_frame_does_not_spin(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    # given another greenlet that needs the hub
    client, peer = connected
    ticker = Ticker()
    command = command_in_flight(client, peer)

    # when the switch sends half of an event and closes
    event = recorded_events("esl-transcript.txt")[0]
    peer.send(event[: len(event) // 2])
    peer.close()

    # then the command fails, the client goes on to reconnect, and the hub kept running
    assert_fails_then_reconnects(command, switch, lifecycle, client)
    ticker.wait_for_ticks(5)
    ticker.stop()


def test_a_stall_mid_frame_times_out_and_the_hub_keeps_running(
    connected: tuple[EslClient, Peer],
) -> None:
    # given a switch that sends half a frame, then nothing, keeping the connection open
    client, peer = connected
    ticker = Ticker()
    command = command_in_flight(client, peer, timeout=0.3)
    peer.send(b"Content-Type: api/response\nContent-Length: 100\n\npartial")

    # then the command's wait ends with a timeout while other greenlets keep running
    with pytest.raises(SwitchTimeout):
        command.get(timeout=5)
    ticker.wait_for_ticks(5)
    ticker.stop()


def test_a_send_the_switch_never_reads_times_out_and_drops_the_connection(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    # given a switch that stopped reading its socket
    client, _ = connected

    # when robocall sends more than the socket buffers hold
    huge = "echo " + "x" * (48 * 1024 * 1024)
    with pytest.raises(SwitchTimeout):
        client.api(huge, timeout=0.5)

    # then the half-sent connection is dropped and a fresh one replaces it
    reconnect(switch, lifecycle, client)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"HTTP/1.1 400 Bad Request\r\n\r\n", id="not ESL"),
        pytest.param(b"Content-Type: text/event-json\nContent-Length: 4\n\n{{{{", id="bad json"),
        pytest.param(b"Content-Type: api/response\nContent-Length: x\n\n", id="bad length"),
        pytest.param(b"Content-Type: api/response\n" + b"X: y\n" * 60000, id="endless headers"),
    ],
)
def test_garbage_drops_the_connection_and_reconnects(
    switch: ScriptedSwitch,
    lifecycle: Lifecycle,
    connected: tuple[EslClient, Peer],
    garbage: bytes,
) -> None:
    client, peer = connected
    command = command_in_flight(client, peer)
    peer.send(garbage)
    assert_fails_then_reconnects(command, switch, lifecycle, client)


def test_an_unasked_reply_is_garbage(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    client, peer = connected
    peer.send(api_response("nobody asked"))
    reconnect(switch, lifecycle, client)


def test_the_shutdown_disconnect_notice_is_a_disconnect(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    # given the frames FreeSWITCH sent when it was shut down with a session open
    client, peer = connected
    notice = [
        frame.raw
        for frame in transcripts.load("esl-shutdown.txt").frames()
        if frame.headers["Content-Type"] in ("text/event-json", "text/disconnect-notice")
    ]
    assert b"The system is being shut down." in notice[-1]
    command = command_in_flight(client, peer)

    # when the notice arrives (the socket stays open a moment, as FreeSWITCH's does)
    peer.send(b"".join(notice))

    # then the client treats it as the end of the connection
    assert_fails_then_reconnects(command, switch, lifecycle, client)


def test_a_failing_callback_does_not_stop_the_client(switch: ScriptedSwitch) -> None:
    def broken(client: EslClient) -> None:
        raise RuntimeError("callback bug")

    client = EslClient("127.0.0.1", switch.port, "ClueCon", on_connected=broken, **FAST)  # type: ignore[arg-type]
    gevent.spawn(lambda: switch.next_peer().handshake())
    client.connect()
    peer = switch.accepted[0]
    gevent.spawn(lambda: (peer.read_command(), peer.send(api_response("fine"))))
    assert client.api("status") == "fine"
    client.close()


def test_an_unknown_command_fails_without_breaking_the_stream(
    connected: tuple[EslClient, Peer],
) -> None:
    client, peer = connected
    gevent.spawn(lambda: (peer.read_command(), peer.send(reply("-ERR command not found"))))
    with pytest.raises(CommandFailed):
        client.execute("call-1", "playback", "/tmp/a.wav")
    gevent.spawn(lambda: (peer.read_command(), peer.send(api_response("343"))))
    assert client.api("uptime") == "343"


def test_a_refused_hangup_is_logged_and_waits_for_nothing(
    connected: tuple[EslClient, Peer], caplog: pytest.LogCaptureFixture
) -> None:
    # given a switch that answers a hangup only after robocall's command timeout, refusing it
    client, peer = connected
    client.command_timeout = 0.2

    def answer_late() -> None:
        peer.read_command()
        gevent.sleep(0.5)
        peer.send(reply("-ERR invalid session id [call-1]"))
        peer.read_command()
        peer.send(api_response("343"))

    gevent.spawn(answer_late)
    # when robocall hangs the channel up, then it goes on at once (the old wait for the +OK
    # would have raised SwitchTimeout after 0.2 s)
    with caplog.at_level(logging.INFO, logger="robocall.esl.client"):
        client.hangup("call-1")
        # and the refusal, when it comes, is logged and leaves the stream in step
        assert client.api("uptime", timeout=2) == "343"
    assert any("refused" in r.getMessage() and "hangup" in r.getMessage()
               for r in caplog.records)


def test_close_stops_for_good(lifecycle: Lifecycle, connected: tuple[EslClient, Peer]) -> None:
    # given a pending command
    client, peer = connected
    command = command_in_flight(client, peer)

    # when robocall closes the client
    client.close()

    # then the command fails, the switch sees the socket closed, and nothing works any more
    with pytest.raises(SwitchDisconnected):
        command.get(timeout=5)
    peer.wait_closed()
    assert client.closed and not client.connected
    with pytest.raises(SwitchDisconnected):
        client.api("status")
    assert lifecycle.calls == ["connected"]


def test_a_refused_reconnect_is_retried_with_backoff(
    switch: ScriptedSwitch, lifecycle: Lifecycle, connected: tuple[EslClient, Peer]
) -> None:
    # given a dropped connection
    client, peer = connected
    peer.close()

    # when the first reconnect is refused (the switch restarted with its ESL not ready)
    switch.next_peer().handshake(password="not-yet")

    # then the client tries again and gets in
    reconnect(switch, lifecycle, client)
    assert len(switch.accepted) == 3


def test_start_connects_once_the_switch_answers(
    switch: ScriptedSwitch, lifecycle: Lifecycle
) -> None:
    # given a client started while the switch still refuses it
    client = EslClient(
        "127.0.0.1",
        switch.port,
        "ClueCon",
        on_connected=lifecycle.connected,
        **FAST,  # type: ignore[arg-type]
    )
    client.start()
    try:
        refused = switch.next_peer()
        assert refused.handshake(password="not-yet") == [b"auth ClueCon\n\n"]

        # when the switch accepts the next attempt
        switch.next_peer().handshake()

        # then the client is connected and announced it
        client.wait_connected(timeout=5)
        lifecycle.wait_for(["connected"])
    finally:
        client.close()

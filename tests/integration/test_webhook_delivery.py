"""One webhook POST against real local servers: what is sent, and how a bad receiver is held
off (redirects not followed, long answers not read, silence cut off by the deadline)."""

from __future__ import annotations

import socket

import gevent
import pytest

from robocall.calls.webhook_delivery import ERROR_EXCERPT_CHARS, post_webhook
from tests.support.receiver import Receiver


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def test_a_post_carries_the_body_and_headers_and_2xx_is_delivered(receiver):
    result = post_webhook(receiver.url, b'{"event":"call.dialing"}', {"X-Robocall-Event": "a"},
                          timeout_seconds=5)
    assert result.delivered and result.http_status == 204 and result.error is None
    [received] = receiver.received
    assert received.body == b'{"event":"call.dialing"}'
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-robocall-event"] == "a"


def test_credentials_in_the_url_go_as_basic_auth_and_the_query_is_kept(receiver):
    url = receiver.url.replace("http://", "http://hook:p%40ss@") + "?token=t1"
    assert post_webhook(url, b"{}", {}, timeout_seconds=5).delivered
    [received] = receiver.received
    assert received.headers["authorization"] == "Basic aG9vazpwQHNz"  # hook:p@ss


def test_a_redirect_is_not_followed(receiver):
    # given a receiver that redirects to another host (which would record what it got)
    elsewhere = Receiver().start()
    try:
        receiver.answer = lambda r: (307, {"Location": elsewhere.url + "?secret=1"})
        # when an event is posted
        result = post_webhook(receiver.url, b"{}", {}, timeout_seconds=5)
        # then it is a failed attempt that says where it pointed, and nothing went there
        assert not result.delivered and result.http_status == 307
        assert result.error == (
            f"redirect to {elsewhere.url} not followed; use the final URL"
        )
        assert elsewhere.received == []
    finally:
        elsewhere.stop()


def test_an_error_answer_is_read_only_a_little(receiver):
    receiver.answer = lambda r: (500, {})
    result = post_webhook(receiver.url, b"{}", {}, timeout_seconds=5)
    assert not result.delivered and result.error == "HTTP 500: receiver says no"


def _raw_server(handle) -> tuple[socket.socket, str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        connection, _ = listener.accept()
        handle(connection)

    gevent.spawn(serve)
    host, port = listener.getsockname()
    return listener, f"http://{host}:{port}/hook"


def test_an_endless_answer_is_cut_at_the_read_limit():
    # given a receiver that answers 500 with a body that never ends
    def endless(connection: socket.socket) -> None:
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n\r\n")
        try:
            while True:
                connection.sendall(b"x" * 65536)
        except OSError:
            pass  # robocall hung up: what this test waits for

    listener, url = _raw_server(endless)
    try:
        # when an event is posted, then robocall reads a little, hangs up and reports it
        result = post_webhook(url, b"{}", {}, timeout_seconds=10)
        assert result.http_status == 500
        assert result.error == "HTTP 500: " + "x" * ERROR_EXCERPT_CHARS
    finally:
        listener.close()


def test_a_silent_receiver_is_cut_off_by_the_deadline():
    # given a receiver that accepts and never answers
    held: list[socket.socket] = []
    listener, url = _raw_server(held.append)
    try:
        # when an event is posted with a short deadline
        result = post_webhook(url, b"{}", {}, timeout_seconds=0.3)
        # then it is a failed attempt saying so
        assert result.http_status is None and result.error == "no answer within 0.3 s"
    finally:
        for connection in held:
            connection.close()
        listener.close()


def test_a_closed_port_is_a_failed_attempt():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = post_webhook(f"http://127.0.0.1:{port}/h", b"{}", {}, timeout_seconds=5)
    assert result.http_status is None and "ConnectionRefusedError" in (result.error or "")

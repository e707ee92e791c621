"""One webhook POST against real local servers: what is sent, and how a bad receiver is held
off (redirects not followed, answers never read, silence cut off by the deadline), and where a
POST may go (the receivers here are on loopback, which only an operator's allow opens)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
from functools import partial

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from robocall.calls.webhook_delivery import post_webhook as post_anywhere
from robocall.calls.webhook_targets import TargetPolicy
from tests.support.receiver import Receiver
from tests.support.resolver import LocalResolver

# The test receivers listen on 127.0.0.1: allowed as an on-prem operator allows its network.
LOOPBACK_ALLOWED = TargetPolicy(
    allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),), resolver=LocalResolver()
)
post_webhook = partial(post_anywhere, targets=LOOPBACK_ALLOWED)


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
        # then it is a failed attempt that says so (not where: that is the receiver's text),
        # and nothing went there
        assert not result.delivered and result.http_status == 307
        assert result.error == (
            "HTTP 307: a redirect, not followed; set callbackUrl to the final URL"
        )
        assert elsewhere.received == []
    finally:
        elsewhere.stop()


def test_an_error_answer_keeps_its_status_not_its_body(receiver):
    # given a receiver that answers 500 with a body
    receiver.answer = lambda r: (500, {})
    # when an event is posted
    result = post_webhook(receiver.url, b"{}", {}, timeout_seconds=5)
    # then the status is kept, with how long it took, and the receiver's text is not
    assert not result.delivered and result.error == "HTTP 500"
    assert result.http_status == 500 and result.duration_ms is not None


def test_loopback_is_refused_without_the_operators_allow(receiver):
    # when an event is posted to a loopback receiver with the default (public only) policy
    result = post_anywhere(receiver.url, b"{}", {}, timeout_seconds=5)
    # then nothing is sent, and the attempt says why
    assert result.http_status is None and not result.delivered
    assert result.error is not None and "127.0.0.1, a loopback address" in result.error
    assert receiver.received == []


def test_the_connection_goes_to_the_vetted_address_with_the_urls_host(receiver):
    # given a name that resolves to the receiver's loopback address
    resolver = LocalResolver({"hooks.example.test": ["127.0.0.1"]})
    policy = TargetPolicy(allowed_networks=LOOPBACK_ALLOWED.allowed_networks, resolver=resolver)
    url = receiver.url.replace("127.0.0.1", "hooks.example.test")
    # when an event is posted to it
    assert post_anywhere(url, b"{}", {}, timeout_seconds=5, targets=policy).delivered
    # then the name was resolved once, by the vetting, and the Host header is the URL's own
    assert resolver.asked == ["hooks.example.test"]
    [received] = receiver.received
    port = url.split(":")[2].split("/")[0]
    assert received.headers["host"] == f"hooks.example.test:{port}"


def test_a_name_that_now_resolves_inside_is_refused_at_delivery(receiver):
    # given a name that resolves to a private address (DNS changed after submission)
    resolver = LocalResolver({"hooks.example.test": ["10.1.2.3"]})
    policy = TargetPolicy(allowed_networks=LOOPBACK_ALLOWED.allowed_networks, resolver=resolver)
    # when an event is posted to it, then no connection is tried and the attempt says why
    result = post_anywhere("http://hooks.example.test/h", b"{}", {}, timeout_seconds=5,
                           targets=policy)
    assert result.http_status is None
    assert result.error == (
        "refused: host hooks.example.test resolves to 10.1.2.3, a private address; robocall "
        "posts only to public addresses (an operator can allow a network with "
        "ROBOCALL_WEBHOOK_ALLOW_NETWORKS)"
    )


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


def test_an_endless_answer_is_not_read():
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
        # when an event is posted, then robocall takes the status, hangs up and reports it
        result = post_webhook(url, b"{}", {}, timeout_seconds=10)
        assert result.http_status == 500 and result.error == "HTTP 500"
    finally:
        listener.close()


def test_an_answer_that_is_not_http_is_not_quoted():
    # given a service that is not HTTP (a Redis, say) and answers in its own words
    def not_http(connection: socket.socket) -> None:
        connection.recv(65536)
        connection.sendall(b"-ERR unknown command 'POST', with args: secret-value\r\n")
        connection.close()

    listener, url = _raw_server(not_http)
    try:
        # when an event is posted, then the failure names its kind, never the service's text
        result = post_webhook(url, b"{}", {}, timeout_seconds=10)
        assert result.http_status is None
        assert result.error == "BadStatusLine: the answer is not valid HTTP"
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


def test_https_goes_to_the_vetted_address_with_the_name_for_sni_and_the_certificate(
    tmp_path, monkeypatch
):
    # given an HTTPS receiver on 127.0.0.1 whose certificate names hooks.example.test (trusted
    # as the system's CA store here), recording the server name each handshake asked for
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=hooks.example.test",
         "-addext", "subjectAltName=DNS:hooks.example.test"],
        check=True, capture_output=True, timeout=60,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    receiver = Receiver()
    server = WSGIServer(("127.0.0.1", 0), receiver._app, log=None, error_log=None,
                        ssl_context=context)
    server.start()
    try:
        port = server.address[1]
        policy = TargetPolicy(allowed_networks=LOOPBACK_ALLOWED.allowed_networks,
                              resolver=LocalResolver({"hooks.example.test": ["127.0.0.1"]}))
        # when an event is posted to the name
        result = post_anywhere(f"https://hooks.example.test:{port}/h", b"{}", {},
                               timeout_seconds=10, targets=policy)
        # then it reached the vetted address, asking for the name and checking the
        # certificate against it
        assert result.delivered, result.error
        assert server_names == ["hooks.example.test"]
        assert receiver.received[0].headers["host"] == f"hooks.example.test:{port}"
        # and the same receiver by its address fails the certificate check: it is verified
        by_address = post_anywhere(f"https://127.0.0.1:{port}/h", b"{}", {},
                                   timeout_seconds=10, targets=policy)
        assert not by_address.delivered and "CERTIFICATE_VERIFY_FAILED" in (
            by_address.error or "")
    finally:
        server.stop(timeout=1)

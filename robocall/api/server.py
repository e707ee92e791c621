"""The HTTP server: gevent's WSGI server with TCP_NODELAY on every accepted socket.

``gevent.pywsgi`` writes a response's headers and body in two sends; without TCP_NODELAY,
Nagle's algorithm and the client's delayed ACK add ~40 ms to every keep-alive request
(docs/design.md, "Facts measured here"). One process serves the API and, later, dials: a
second worker would be a second dialer.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from gevent import pywsgi

from robocall.errors import ConfigError

log = logging.getLogger(__name__)


class NoDelayWSGIServer(pywsgi.WSGIServer):  # type: ignore[misc]  # gevent is untyped
    """``pywsgi.WSGIServer`` that disables Nagle on each connection it accepts."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``[::1]:8080`` for IPv6."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def make_server(app: Any, listen: str, *, access_log: bool = False) -> NoDelayWSGIServer:
    """A server for ``app`` bound to ``listen`` (port 0 picks a free port); not yet serving."""
    host, port = parse_listen(listen)
    server = NoDelayWSGIServer(
        (host, port),
        app,
        log=log if access_log else None,
        error_log=log,
    )
    server.init_socket()
    return server

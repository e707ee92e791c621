"""The HTTP server: gevent's WSGI server with TCP_NODELAY on every accepted socket.

``gevent.pywsgi`` writes a response's headers and body in two sends; without TCP_NODELAY,
Nagle's algorithm and the client's delayed ACK add ~40 ms to every keep-alive request
(docs/design.md, "Facts measured here"). One process serves the API and, later, dials: a
second worker would be a second dialer.
"""

from __future__ import annotations

import logging
import os
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
    if int(port) > 65535:
        raise ConfigError(f"--listen {listen!r}: the port must be 0 to 65535")
    return host.strip("[]"), int(port)


def bind_listener(listen: str) -> socket.socket:
    """A socket bound to ``listen`` and listening (port 0 picks a free port); ConfigError, one
    line, when the address is taken, not this host's, or not allowed."""
    host, port = parse_listen(listen)
    try:
        listener: socket.socket = pywsgi.WSGIServer.get_listener((host, port), family=_family(host))
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)  # without gevent's suffix
        raise ConfigError(f"--listen {listen}: cannot listen there: {reason}") from err
    return listener


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def make_server(
    app: Any, listen: str | socket.socket, *, access_log: bool = False
) -> NoDelayWSGIServer:
    """A server for ``app`` on ``listen`` (``HOST:PORT``, port 0 picks a free port; or a socket
    from :func:`bind_listener`); not yet serving."""
    listener = bind_listener(listen) if isinstance(listen, str) else listen
    server = NoDelayWSGIServer(
        listener,
        app,
        log=log if access_log else None,
        error_log=log,
    )
    server.init_socket()
    return server

"""A raw, scripted Event Socket server for testing the client over real TCP.

Unlike FakeSwitch it has no behaviour of its own: the test reads the commands the client sent
and writes exactly the bytes it wants back — recorded frames, garbage, half a frame — or drops,
resets or stalls the connection.
"""

from __future__ import annotations

import json
import socket
import struct

import gevent
import gevent.queue

from tests.support import transcripts


def reply(text: str, **headers: str) -> bytes:
    """A command/reply frame."""
    extra = "".join(f"{name.replace('_', '-')}: {value}\n" for name, value in headers.items())
    return f"Content-Type: command/reply\nReply-Text: {text}\n{extra}\n".encode()


def api_response(body: str) -> bytes:
    """An api/response frame."""
    data = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def json_event(headers: dict[str, str], body: str | None = None) -> bytes:
    """A text/event-json frame as FreeSWITCH writes it."""
    document = dict(headers)
    if body is not None:
        document["Content-Length"] = str(len(body.encode()))
        document["_body"] = body
    data = json.dumps(document).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(data) + data


def recorded_events(name: str) -> list[bytes]:
    """Every event frame of a transcript, as the exact bytes FreeSWITCH sent."""
    return [
        frame.raw
        for frame in transcripts.load(name).frames()
        if frame.headers.get("Content-Type", "").startswith("text/event-")
    ]


class Peer:
    """One accepted client connection, driven by the test."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self.received: list[bytes] = []

    def read_command(self, timeout: float = 5.0) -> bytes:
        """The next command the client sent (it ends with an empty line)."""
        with gevent.Timeout(timeout):
            while b"\n\n" not in self._buffer:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("client closed the connection")
                self._buffer += data
        command, self._buffer = self._buffer.split(b"\n\n", 1)
        self.received.append(command + b"\n\n")
        return command + b"\n\n"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def handshake(self, password: str = "ClueCon") -> list[bytes]:
        """Play FreeSWITCH's side of auth and the event subscription; return both commands."""
        self.send(b"Content-Type: auth/request\n\n")
        auth = self.read_command()
        if auth != f"auth {password}\n\n".encode():
            self.send(reply("-ERR invalid"))
            return [auth]
        self.send(reply("+OK accepted"))
        subscription = self.read_command()
        self.send(reply("+OK event listener enabled json"))
        return [auth, subscription]

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Block until the client closed its side."""
        with gevent.Timeout(timeout):
            while self.sock.recv(65536):
                pass

    def close(self) -> None:
        """Close cleanly (FIN), as FreeSWITCH does after a disconnect-notice."""
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection (RST), as a crashed switch or a dead link does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class ScriptedSwitch:
    """Listens on 127.0.0.1 (a free port); each connection is handed to the test as a Peer."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._peers: gevent.queue.Queue[Peer] = gevent.queue.Queue()
        self.accepted: list[Peer] = []
        self._acceptor = gevent.spawn(self._accept)

    def _accept(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            peer = Peer(sock)
            self.accepted.append(peer)
            self._peers.put(peer)

    def next_peer(self, timeout: float = 5.0) -> Peer:
        """The next connection the client opens."""
        return self._peers.get(timeout=timeout)

    def close(self) -> None:
        self._acceptor.kill()
        self._listener.close()
        for peer in self.accepted:
            peer.sock.close()

"""A minimal Event Socket client for testing FakeSwitch from the client's side over real TCP.

Deliberately tiny and independent of robocall.esl (built on another branch): it splits frames
the way tests/support/transcripts.py does (headers up to a blank line, then Content-Length
bytes) and keeps the exact bytes of each frame so tests can compare framing with the
recorded transcripts. Every read is bounded by a timeout so a broken fake fails, not hangs.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class WireFrame:
    """One frame as received: exact bytes, outer headers, body."""

    raw: bytes

    @property
    def headers(self) -> dict[str, str]:
        head = self.raw.split(b"\n\n", 1)[0].decode()
        return dict(line.split(": ", 1) for line in head.split("\n") if line)

    @property
    def body(self) -> bytes:
        parts = self.raw.split(b"\n\n", 1)
        return parts[1] if len(parts) == 2 else b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def event(self) -> dict[str, str] | None:
        """The event's headers (json or plain, URL-decoded), body as ``_body``; None if no event."""
        if self.content_type == "text/event-json":
            return json.loads(self.body)
        if self.content_type == "text/event-plain":
            text = self.body.decode()
            head, _, inner_body = text.partition("\n\n")
            data: dict[str, str] = {}
            for line in head.split("\n"):
                if ": " in line:
                    key, value = line.split(": ", 1)
                    data.setdefault(key, unquote(value))
            if inner_body:
                data["_body"] = inner_body
            return data
        return None


class EslWire:
    """A blocking socket client: send raw commands, read frames one at a time."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buffer = b""
        self.frames: list[WireFrame] = []
        self.cursor = 0  # frames before this index were already looked at by wait_event

    def close(self) -> None:
        self.sock.close()

    def send(self, text: str) -> None:
        """Send one command; a trailing blank line is added if missing."""
        data = text if text.endswith("\n\n") else text.rstrip("\n") + "\n\n"
        self.sock.sendall(data.encode())

    def read(self) -> WireFrame:
        """The next frame (raises socket.timeout, or EOFError when the server closed)."""
        while True:
            end = self.buffer.find(b"\n\n")
            if end >= 0:
                head = self.buffer[:end].decode()
                length = 0
                for line in head.split("\n"):
                    if line.lower().startswith("content-length: "):
                        length = int(line.split(": ", 1)[1])
                if len(self.buffer) >= end + 2 + length:
                    raw = self.buffer[:end + 2 + length]
                    self.buffer = self.buffer[end + 2 + length:]
                    frame = WireFrame(raw)
                    self.frames.append(frame)
                    return frame
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buffer += data

    def command(self, text: str) -> WireFrame:
        """Send a command and return its reply, keeping events that arrive first."""
        self.send(text)
        while True:
            frame = self.read()
            if frame.content_type in ("command/reply", "api/response"):
                return frame

    def login(self, password: str = "ClueCon", events: str = "") -> None:
        """Read auth/request, authenticate, and subscribe (json) when ``events`` is given."""
        greeting = self.read()
        assert greeting.content_type == "auth/request"
        reply = self.command(f"auth {password}")
        assert reply.headers["Reply-Text"] == "+OK accepted", reply.raw
        if events:
            self.command(f"event json {events}")

    def events(self) -> list[dict[str, str]]:
        """Every event received so far, in order."""
        return [e for e in (f.event for f in self.frames) if e is not None]

    def wait_event(self, name: str, unique_id: str | None = None,
                   **headers: str) -> dict[str, str]:
        """The next event (after the last one waited for) with this name and header values.

        Header keyword names use ``_`` for ``-`` (``Application_UUID="..."``).
        """
        def match(event: dict[str, str]) -> bool:
            if event.get("Event-Name") != name:
                return False
            if unique_id and event.get("Unique-ID") != unique_id:
                return False
            return all(event.get(k.replace("_", "-")) == v for k, v in headers.items())
        while True:
            while self.cursor < len(self.frames):
                event = self.frames[self.cursor].event
                self.cursor += 1
                if event is not None and match(event):
                    return event
            self.read()

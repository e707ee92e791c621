"""Reader for the Event Socket sessions recorded from a real FreeSWITCH 1.11.1.

The files in ``tests/transcripts/`` (recorded from a real FreeSWITCH 1.11.1; their README says how)
hold what robocall's parser and FakeSwitch are held to. Format: ``>>>`` lines were sent (a command
ends with an empty ``>>>`` line); ``<<< [t=...] frame N`` ... ``<<< end frame N`` blocks are frames
received byte for byte, except that the recorder added a line break after a body that does not end
in one (``Content-Length`` gives the real size); ``###`` lines are notes. A second connection's
frames are marked ``(connN)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TRANSCRIPT_DIR = Path(__file__).resolve().parent.parent / "transcripts"

_FRAME_START = re.compile(r"^<<< \[t=(?P<t>[0-9.]+)\] frame (?P<n>\d+)(?: \((?P<conn>conn\d+)\))?$")
_CONNECTION_NOTE = re.compile(r"=+ connection (\d+) =+")
_FRAME_END = re.compile(r"^<<< end frame (?P<n>\d+)$")


@dataclass(frozen=True)
class Frame:
    """One frame FreeSWITCH sent, as the exact bytes on the wire."""

    number: int
    t: float
    connection: str
    raw: bytes

    @property
    def headers(self) -> dict[str, str]:
        """The frame's own (outer) headers, not URL-decoded."""
        head = self.raw.split(b"\n\n", 1)[0].decode()
        return dict(line.split(": ", 1) for line in head.split("\n") if line)

    @property
    def body(self) -> bytes:
        parts = self.raw.split(b"\n\n", 1)
        return parts[1] if len(parts) == 2 else b""


@dataclass(frozen=True)
class Sent:
    """One command robocall's recorder sent, as the exact bytes on the wire."""

    connection: str
    raw: bytes


@dataclass
class Transcript:
    name: str
    items: list[Frame | Sent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def frames(self, connection: str = "conn1") -> list[Frame]:
        return [i for i in self.items if isinstance(i, Frame) and i.connection == connection]

    def sent(self, connection: str = "conn1") -> list[Sent]:
        return [i for i in self.items if isinstance(i, Sent) and i.connection == connection]

    def received_bytes(self, connection: str = "conn1") -> bytes:
        """Everything FreeSWITCH wrote on one connection, in order, as one byte string."""
        return b"".join(f.raw for f in self.frames(connection))


def names() -> list[str]:
    """The file names of every recorded transcript."""
    return sorted(p.name for p in TRANSCRIPT_DIR.glob("esl-*.txt"))


def load(name: str) -> Transcript:
    """Parse one transcript file into frames (exact bytes) and sent commands."""
    data = (TRANSCRIPT_DIR / name).read_bytes()
    lines = data.split(b"\n")
    transcript = Transcript(name)
    pending_command: list[bytes] = []
    connection = "conn1"
    i = 0
    while i < len(lines):
        line = lines[i]
        text = line.decode("utf-8", "replace")
        start = _FRAME_START.match(text)
        if start:
            i, frame = _read_frame(lines, i + 1, start)
            transcript.items.append(frame)
            continue
        if text.startswith(">>> ") or text == ">>>":
            content = line[4:]
            pending_command.append(content)
            if content == b"":
                transcript.items.append(Sent(connection, b"\n".join(pending_command) + b"\n"))
                pending_command = []
        elif text.startswith("###"):
            transcript.notes.append(text[3:].strip())
            switch = _CONNECTION_NOTE.search(text)
            if switch:
                connection = f"conn{switch[1]}"
        i += 1
    return transcript


def _read_frame(lines: list[bytes], i: int, start: re.Match[str]) -> tuple[int, Frame]:
    number = int(start["n"])
    connection = start["conn"] or "conn1"
    head: list[bytes] = []
    while lines[i] != b"":
        head.append(lines[i])
        i += 1
    i += 1  # the blank line that ends the headers
    raw = b"\n".join(head) + b"\n\n"
    length = 0
    for h in head:
        if h.lower().startswith(b"content-length: "):
            length = int(h.split(b": ", 1)[1])
    if length:
        # The body is the next `length` bytes of the file, newlines included.
        rest = b"\n".join(lines[i:])
        body = rest[:length]
        raw += body
        consumed = body.count(b"\n")
        i += consumed
        # The recorder adds a line break after a body that does not end in one.
        if not body.endswith(b"\n"):
            i += 1
    end = _FRAME_END.match(lines[i].decode("utf-8", "replace"))
    if not end or int(end["n"]) != number:
        raise ValueError(f"frame {number}: expected its end marker, found {lines[i][:80]!r}")
    return i + 1, Frame(number, float(start["t"]), connection, raw)

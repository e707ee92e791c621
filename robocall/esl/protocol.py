"""Sans-IO parser for FreeSWITCH Event Socket frames.

A frame is a block of ``Name: value`` header lines ended by an empty line, followed by
``Content-Length`` bytes of body when that header is present. :class:`FrameParser` turns bytes
(in pieces of any size) into :class:`Frame` objects and parses event bodies into :class:`Event`
values; it does no I/O, so the transport and the tests feed it the same way.

Two details decide correctness (greenswitch got both wrong: docs/design.md, "The ESL client"):

* ``text/event-plain`` values are URL-encoded. They are decoded one value at a time AFTER the
  lines are split, so a channel variable holding ``%0A`` cannot forge a header line.
* An event may carry its own body (a BACKGROUND_JOB's result): JSON puts it in ``_body``, plain
  puts an inner ``Content-Length`` and the body after the event's header block.

Anything that is not a frame raises :class:`robocall.errors.ProtocolError`; the buffer never grows
beyond one header block (``max_header_bytes``) plus one body (``max_body_bytes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

import orjson

from robocall.errors import ProtocolError

AUTH_REQUEST: Final = "auth/request"
COMMAND_REPLY: Final = "command/reply"
API_RESPONSE: Final = "api/response"
EVENT_JSON: Final = "text/event-json"
EVENT_PLAIN: Final = "text/event-plain"
DISCONNECT_NOTICE: Final = "text/disconnect-notice"
RUDE_REJECTION: Final = "text/rude-rejection"

# An event's header block is ~10 KB in the recordings; 256 KB leaves room for channels with
# many variables while keeping a garbage stream without a blank line from growing the buffer.
DEFAULT_MAX_HEADER_BYTES: Final = 256 * 1024
# `show channels as json` on a busy switch is the largest body robocall asks for (~3 KB a row).
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024

_EVENT_CONTENT_TYPES: Final = frozenset({EVENT_JSON, EVENT_PLAIN})
_ONLY_TEXT: Final = {str}


class Event:
    """One FreeSWITCH event: its headers (decoded) and its body (a BACKGROUND_JOB's result)."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: dict[str, str], body: str = "") -> None:
        self.headers = headers
        self.body = body

    @property
    def name(self) -> str:
        """``Event-Name``, e.g. ``CHANNEL_ANSWER``; empty when absent."""
        return self.headers.get("Event-Name", "")

    @property
    def unique_id(self) -> str | None:
        """``Unique-ID``: the channel the event is about (None for BACKGROUND_JOB and others)."""
        return self.headers.get("Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        """``Job-UUID`` of a BACKGROUND_JOB: the id robocall chose when it sent the bgapi."""
        return self.headers.get("Job-UUID")

    @property
    def application_uuid(self) -> str | None:
        """``Application-UUID``: the ``Event-UUID`` robocall chose for a sendmsg execute."""
        return self.headers.get("Application-UUID")

    def get(self, name: str, default: str | None = None) -> str | None:
        """A header's value, or ``default`` when the event lacks it."""
        return self.headers.get(name, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.headers == other.headers and self.body == other.body

    __hash__ = None  # type: ignore[assignment]  # mutable mapping inside: not hashable

    def __repr__(self) -> str:
        return f"Event({self.name!r}, unique_id={self.unique_id!r})"


class Frame:
    """One Event Socket frame: outer headers, raw body, and the parsed event if it is one."""

    __slots__ = ("headers", "body", "event")

    def __init__(self, headers: dict[str, str], body: bytes, event: Event | None) -> None:
        self.headers = headers
        self.body = body
        self.event = event

    @property
    def content_type(self) -> str:
        """The frame's ``Content-Type`` (every valid frame has one)."""
        return self.headers["Content-Type"]

    @property
    def text(self) -> str:
        """What FreeSWITCH answered: ``Reply-Text`` of a command/reply, else the body as text."""
        reply = self.headers.get("Reply-Text")
        if reply is not None:
            return reply
        return self.body.decode("utf-8", "replace")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (self.headers, self.body, self.event) == (other.headers, other.body, other.event)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Frame({self.headers.get('Content-Type')!r}, {len(self.body)} bytes)"


class FrameParser:
    """Incremental frame parser: feed it bytes as they arrive, get whole frames back.

    After it raised :class:`ProtocolError` the stream is out of step and the parser refuses
    further input: the connection must be dropped.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._buffer = bytearray()
        self._max_header_bytes = max_header_bytes
        self._max_body_bytes = max_body_bytes
        # Headers of a frame whose body has not fully arrived yet, and its length.
        self._pending_headers: dict[str, str] | None = None
        self._pending_length = 0
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame they complete, in order."""
        if self._failed is not None:
            raise ProtocolError(f"stream already broken: {self._failed}")
        try:
            return self._feed(data)
        except ProtocolError as err:
            self._failed = err
            self._buffer.clear()
            raise

    def _feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        position = 0
        size = len(buffer)
        while True:
            if self._pending_headers is None:
                # FreeSWITCH puts no blank lines between frames; tolerate stray ones anyway.
                while position < size and buffer[position] == 0x0A:
                    position += 1
                end = buffer.find(b"\n\n", position)
                if end < 0:
                    if size - position > self._max_header_bytes:
                        raise ProtocolError(
                            f"no end of headers within {self._max_header_bytes} bytes"
                        )
                    _check_first_line(buffer, position)
                    break
                if end - position > self._max_header_bytes:
                    raise ProtocolError(f"header block over {self._max_header_bytes} bytes")
                headers = _parse_outer_headers(bytes(buffer[position:end]))
                position = end + 2
                length = _content_length(headers, self._max_body_bytes)
                if length == 0:
                    frames.append(_make_frame(headers, b""))
                    continue
                self._pending_headers = headers
                self._pending_length = length
            if size - position < self._pending_length:
                break
            body = bytes(buffer[position : position + self._pending_length])
            position += self._pending_length
            frames.append(_make_frame(self._pending_headers, body))
            self._pending_headers = None
        if position:
            del buffer[:position]
        return frames


def _parse_outer_headers(block: bytes) -> dict[str, str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError("frame headers are not UTF-8") from err
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, separator, value = line.partition(": ")
        if not separator or not name:
            raise ProtocolError(f"not a header line: {line[:80]!r}")
        headers[name] = value
    if "Content-Type" not in headers:
        raise ProtocolError(f"frame without Content-Type: {text[:120]!r}")
    return headers


def _check_first_line(buffer: bytearray, position: int) -> None:
    """Refuse a stream that is not ESL as soon as its first line is in, not at the header limit."""
    line_end = buffer.find(b"\n", position)
    if line_end >= 0:
        name, separator, _ = bytes(buffer[position:line_end]).partition(b": ")
        if not separator or not name:
            raise ProtocolError(f"not a header line: {bytes(buffer[position:line_end])[:80]!r}")


def _content_length(headers: Mapping[str, str], max_body_bytes: int) -> int:
    raw = headers.get("Content-Length")
    if raw is None:
        return 0
    if not raw.isdigit():  # isdigit also refuses a sign, spaces and the empty string
        raise ProtocolError(f"bad Content-Length {raw[:40]!r}")
    length = int(raw)
    if length > max_body_bytes:
        raise ProtocolError(f"Content-Length {length} over the limit of {max_body_bytes}")
    return length


def _make_frame(headers: dict[str, str], body: bytes) -> Frame:
    content_type = headers["Content-Type"]
    if content_type == EVENT_JSON:
        return Frame(headers, body, parse_json_event(body))
    if content_type == EVENT_PLAIN:
        return Frame(headers, body, parse_plain_event(body))
    return Frame(headers, body, None)


def parse_json_event(body: bytes) -> Event:
    """Parse the body of a ``text/event-json`` frame.

    With orjson: every event of every channel on the switch passes here (~5 KB each), and the
    standard library's parser took most of the reader's time at load."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise ProtocolError(f"event body is not JSON: {body[:80]!r}") from err
    if not isinstance(document, dict):
        raise ProtocolError("event JSON is not an object")
    event_body = document.pop("_body", "")
    headers: dict[str, str] = document
    # Nearly every event holds text only: checked in C (map + set), the loop is the rare case.
    if set(map(type, document.values())) != _ONLY_TEXT:
        for name, value in document.items():
            if type(value) is not str:
                headers[name] = _json_value_as_text(name, value)
    if not isinstance(event_body, str):
        raise ProtocolError("event _body is not a string")
    return Event(headers, event_body)


def _json_value_as_text(name: str, value: object) -> str:
    # FreeSWITCH writes a multi-valued header as a JSON array; its plain format spells the same
    # value ARRAY::a|:b, so both formats give the caller one string.
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "ARRAY::" + "|:".join(value)
    raise ProtocolError(f"event header {name!r} is neither text nor a list of text")


def parse_plain_event(body: bytes) -> Event:
    """Parse the body of a ``text/event-plain`` frame (URL-encoded values, optional inner body)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError("plain event is not UTF-8") from err
    block, _, rest = text.partition("\n\n")
    headers: dict[str, str] = {}
    for line in block.split("\n"):
        if not line:
            continue
        name, separator, value = line.partition(": ")
        if not separator or not name:
            raise ProtocolError(f"not an event header line: {line[:80]!r}")
        # Decode each value on its own: an encoded newline stays inside this value.
        headers[name] = unquote(value)
    event_body = ""
    length_text = headers.get("Content-Length")
    if length_text is not None:
        if not length_text.isdigit():
            raise ProtocolError(f"bad inner Content-Length {length_text[:40]!r}")
        raw_rest = rest.encode("utf-8")
        length = int(length_text)
        if length > len(raw_rest):
            raise ProtocolError("inner Content-Length runs past the frame")
        event_body = raw_rest[:length].decode("utf-8", "replace")
    return Event(headers, event_body)

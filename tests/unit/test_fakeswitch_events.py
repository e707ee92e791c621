"""The fake's frame encoders reproduce the recorded FreeSWITCH frames byte for byte."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from robocall.testing import events
from robocall.testing.server import split_commands
from tests.support import transcripts


def _recorded(content_type: str) -> list[transcripts.Frame]:
    return [f for name in transcripts.names() for f in transcripts.load(name).frames()
            + transcripts.load(name).frames("conn2")
            if f.headers.get("Content-Type") == content_type]


def _as_event(headers: list[tuple[str, str]]) -> events.Event:
    own = [(k, v) for k, v in headers if k not in ("Content-Length", "_body")]
    body = dict(headers).get("_body", "")
    return events.Event(dict(headers)["Event-Name"], own, body=body)


def test_json_events_encode_exactly_as_recorded() -> None:
    # Given every text/event-json frame FreeSWITCH sent in the recordings
    frames = _recorded("text/event-json")
    assert frames

    # When each event's headers are encoded again by the fake
    mismatched = [f.number for f in frames
                  if events.encode_json(_as_event(json.loads(f.body, object_pairs_hook=list)))
                  != f.raw]

    # Then the bytes are identical (framing, key order, repeated keys, escaping)
    assert mismatched == []


def test_plain_events_encode_exactly_as_recorded() -> None:
    # Given every text/event-plain frame (URL-encoded values, inner body for BACKGROUND_JOB)
    frames = _recorded("text/event-plain")
    assert frames

    mismatched = []
    for frame in frames:
        head, _, inner = frame.body.decode().partition("\n\n")
        pairs = [line.split(": ", 1) for line in head.split("\n")]
        headers = [(k, unquote(v)) for k, v in pairs if k != "Content-Length"]
        event = events.Event(dict(headers)["Event-Name"], headers, body=inner)
        # When the decoded headers are encoded again
        if events.encode_plain(event) != frame.raw:
            mismatched.append(frame.number)

    # Then the bytes are identical
    assert mismatched == []


@pytest.mark.parametrize(("frame", "expected"), [
    (events.auth_request(), b"Content-Type: auth/request\n\n"),
    (events.command_reply("+OK accepted"),
     b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"),
    (events.command_reply("+OK Job-UUID: j", "j"),
     b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j\nJob-UUID: j\n\n"),
    (events.api_response("true"), b"Content-Type: api/response\nContent-Length: 4\n\ntrue"),
    (events.disconnect_notice(events.SHUTDOWN_NOTICE),
     b"Content-Type: text/disconnect-notice\nContent-Length: 31\n\n"
     b"The system is being shut down.\n"),
])
def test_reply_frames(frame: bytes, expected: bytes) -> None:
    # Then each reply frame has the recorded header order
    assert frame == expected


def test_reply_frames_appear_in_the_recordings() -> None:
    # Given every frame of the recordings
    recorded = {f.raw for n in transcripts.names() for f in transcripts.load(n).frames()}

    # Then the fake's fixed frames are among them
    assert events.auth_request() in recorded
    assert events.command_reply("-ERR command not found") in recorded
    assert events.disconnect_notice(events.EXIT_NOTICE) in recorded


def test_split_commands_keeps_partial_commands_and_bodies() -> None:
    # Given two pipelined commands, one with a body, and the start of a third
    data = (b"api uptime\n\nsendmsg u1\ncall-command: execute\nContent-Length: 5\n\n"
            b"hello" b"api sta")

    # When the buffer is split
    commands, rest = split_commands(data)

    # Then the complete ones come out with their headers and body, the partial one stays
    assert [c.line for c in commands] == ["api uptime", "sendmsg u1"]
    assert commands[1].headers["call-command"] == "execute"
    assert commands[1].body == "hello"
    assert rest == b"api sta"

"""The frame parser against every frame FreeSWITCH 1.11.1 sent in the recorded transcripts."""

from __future__ import annotations

import json
import random

import pytest

from robocall.errors import ProtocolError
from robocall.esl.protocol import Event, Frame, FrameParser
from tests.support import transcripts

CONNECTIONS = [
    (name, connection)
    for name in transcripts.names()
    for connection in sorted({item.connection for item in transcripts.load(name).items})
]


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[Frame]:
    parser = FrameParser()
    frames: list[Frame] = []
    start = 0
    for cut in [*cuts, len(data)]:
        frames += parser.feed(data[start:cut])
        start = cut
    assert parser.buffered == 0
    return frames


@pytest.mark.parametrize(("name", "connection"), CONNECTIONS)
def test_every_recorded_frame_parses_to_its_headers_and_body(name: str, connection: str) -> None:
    # given everything FreeSWITCH wrote on one connection
    recording = transcripts.load(name)
    expected = recording.frames(connection)

    # when it arrives in one read
    frames = FrameParser().feed(recording.received_bytes(connection))

    # then each recorded frame comes out, with its own headers and exact body
    assert [(f.headers, f.body) for f in frames] == [(e.headers, e.body) for e in expected]
    for frame in frames:
        is_event = frame.content_type in ("text/event-json", "text/event-plain")
        assert (frame.event is not None) == is_event
        if is_event:
            assert frame.event is not None and frame.event.name


@pytest.mark.parametrize(("name", "connection"), CONNECTIONS)
def test_random_read_boundaries_give_the_same_frames(name: str, connection: str) -> None:
    # given a recorded stream and the frames it gives in one read
    data = transcripts.load(name).received_bytes(connection)
    whole = FrameParser().feed(data)
    rng = random.Random(f"{name}/{connection}")  # seeded: the same cuts every run

    for _ in range(5):
        # when it arrives cut at random points (some single bytes, some frames merged)
        cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(1, 400))))
        # then the frames and their parsed events are the same
        assert feed_in_pieces(data, cuts) == whole


def test_a_stream_fed_one_byte_at_a_time_gives_the_same_frames() -> None:
    data = transcripts.load("esl-transcript-originate-failures.txt").received_bytes()
    assert feed_in_pieces(data, list(range(1, len(data)))) == FrameParser().feed(data)


def _events(name: str) -> list[Event]:
    frames = FrameParser().feed(transcripts.load(name).received_bytes())
    return [f.event for f in frames if f.event is not None]


def test_plain_and_json_recordings_of_the_same_flow_give_the_same_events() -> None:
    # given the same flow recorded with `event json` and with `event plain`
    json_events = _events("esl-transcript.txt")
    plain_events = _events("esl-transcript-plain.txt")

    # then the events have the same names, in the same order, about the same kind of channel
    assert [e.name for e in json_events] == [e.name for e in plain_events]
    json_call = {e.unique_id for e in json_events} - {None}
    plain_call = {e.unique_id for e in plain_events} - {None}
    assert len(json_call) == len(plain_call) == 1

    # and the variables robocall reads decode to the same values in both formats
    for json_event, plain_event in zip(json_events, plain_events, strict=True):
        for header in (
            "Answer-State",
            "Application",
            "Application-Response",
            "DTMF-Digit",
            "variable_read_result",
            "variable_pagd_digits",
            "variable_sip_destination_url",
            "Hangup-Cause",
            "Job-Command",
        ):
            assert json_event.get(header) == plain_event.get(header), (json_event.name, header)
        assert json_event.headers.keys() == plain_event.headers.keys()
    last = json_events[-1]
    assert plain_events[-1].get("Caller-Channel-Name") == last.get("Caller-Channel-Name")


def test_background_job_result_is_the_event_body_in_both_formats() -> None:
    for name in ("esl-transcript.txt", "esl-transcript-plain.txt"):
        # given the BACKGROUND_JOB of a bgapi originate
        (job,) = [e for e in _events(name) if e.name == "BACKGROUND_JOB"]
        # then its result is the body, and the headers end before it
        assert job.body == f"+OK {job.get('Job-Command-Arg', '').split('=')[1].split(',')[0]}\n"
        assert job.job_uuid and job.get("Job-Command") == "originate"
        assert not any(value.startswith("+OK") for value in job.headers.values())


def test_failed_originates_report_their_cause_in_the_job_body() -> None:
    jobs = [
        e for e in _events("esl-transcript-originate-failures.txt") if e.name == "BACKGROUND_JOB"
    ]
    assert [job.body.strip() for job in jobs] == [
        "-ERR USER_BUSY",
        "-ERR NO_ANSWER",
        "-ERR NORMAL_TEMPORARY_FAILURE",
    ]


def test_execute_complete_carries_the_event_uuid_robocall_chose() -> None:
    events = _events("esl-pipelined-commands.txt")
    playback = [
        e
        for e in events
        if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == "playback"
    ]
    assert [e.application_uuid for e in playback] == ["7799c7ba-1c27-4b77-b73d-a83e6947e66e"]


def _plain_frame(event_lines: list[str], inner_body: bytes = b"") -> bytes:
    block = "".join(f"{line}\n" for line in event_lines).encode()
    if inner_body:
        block = block[:-1] + f"\nContent-Length: {len(inner_body)}\n".encode()
    body = block + b"\n" + inner_body
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def test_an_encoded_newline_in_a_variable_cannot_forge_a_header() -> None:
    # given a plain event whose channel variable holds an encoded "\nUnique-ID: victim"
    data = _plain_frame(
        [
            "Event-Name: DTMF",
            "Unique-ID: real-call",
            "variable_sip_from_display: x%0AUnique-ID%3A%20victim%0A%0AEvent-Name%3A%20HANGUP",
        ]
    )

    # when it is parsed
    (frame,) = FrameParser().feed(data)

    # then the header is the real one and the variable keeps its decoded text
    assert frame.event is not None
    assert frame.event.unique_id == "real-call"
    assert frame.event.name == "DTMF"
    assert frame.event.get("variable_sip_from_display") == (
        "x\nUnique-ID: victim\n\nEvent-Name: HANGUP"
    )


def test_an_injected_newline_in_a_json_value_stays_in_its_value() -> None:
    body = json.dumps(
        {"Event-Name": "DTMF", "Unique-ID": "real-call", "variable_x": "a\nUnique-ID: victim"}
    ).encode()
    frame_bytes = b"Content-Length: %d\nContent-Type: text/event-json\n\n%s" % (len(body), body)
    (frame,) = FrameParser().feed(frame_bytes)
    assert frame.event is not None and frame.event.unique_id == "real-call"


def test_plain_background_job_body_is_split_from_its_headers() -> None:
    (frame,) = FrameParser().feed(
        _plain_frame(["Event-Name: BACKGROUND_JOB", "Job-UUID: job-1"], b"-ERR USER_BUSY\n")
    )
    assert frame.event is not None
    assert frame.event.body == "-ERR USER_BUSY\n"
    assert frame.event.headers == {
        "Event-Name": "BACKGROUND_JOB",
        "Job-UUID": "job-1",
        "Content-Length": "15",
    }


def test_a_json_array_header_reads_like_its_plain_form() -> None:
    body = b'{"Event-Name":"CUSTOM","variable_list":["a","b"]}'
    (frame,) = FrameParser().feed(
        b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body
    )
    assert frame.event is not None and frame.event.get("variable_list") == "ARRAY::a|:b"


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"Reply-Text: +OK\n\n", id="no Content-Type"),
        pytest.param(
            b"Content-Type: api/response\nContent-Length: ten\n\n", id="length not a number"
        ),
        pytest.param(b"Content-Type: api/response\nContent-Length: -5\n\n", id="negative length"),
        pytest.param(
            b"Content-Type: api/response\nContent-Length: 99999999999\n\n", id="huge length"
        ),
        pytest.param(b"HTTP/1.1 200 OK\nServer: nginx\n\n", id="not a header line"),
        pytest.param(b"Content-Type: text/event-json\nContent-Length: 5\n\n{nope", id="bad json"),
        pytest.param(
            b"Content-Type: text/event-json\nContent-Length: 2\n\n[]", id="json not object"
        ),
        pytest.param(b"Content-Type: api/response\n\xff\xfe: x\n\n", id="not utf-8"),
        pytest.param(
            b'Content-Type: text/event-json\nContent-Length: 30\n\n{"Event-Name":{"x":"y"},"a":1}',
            id="json value not text",
        ),
    ],
)
def test_garbage_raises_protocol_error(garbage: bytes) -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError):
        parser.feed(garbage)
    # and the parser stays broken: the stream is out of step for good
    with pytest.raises(ProtocolError):
        parser.feed(b"Content-Type: command/reply\nReply-Text: +OK\n\n")


def test_headers_that_never_end_raise_instead_of_growing_the_buffer() -> None:
    # given a stream of header-like lines with no blank line
    parser = FrameParser(max_header_bytes=4096)
    line = b"X-Filler: " + b"a" * 100 + b"\n"
    with pytest.raises(ProtocolError):
        for _ in range(1000):
            parser.feed(line)
    # then it stopped within the limit, not at the end of the stream
    assert parser.buffered == 0


def test_a_body_over_the_limit_is_refused_before_it_is_buffered() -> None:
    parser = FrameParser(max_body_bytes=1000)
    with pytest.raises(ProtocolError):
        parser.feed(b"Content-Type: api/response\nContent-Length: 1001\n\n")


def test_a_partial_frame_waits_for_the_rest() -> None:
    parser = FrameParser()
    assert parser.feed(b"Content-Type: api/response\nContent-Length: 5\n\n+OK") == []
    (frame,) = parser.feed(b"\n\n")
    assert frame.text == "+OK\n\n"


def test_a_stream_that_is_not_esl_fails_at_its_first_line() -> None:
    # given an HTTP answer, whose CRLF lines never give an ESL end of headers
    with pytest.raises(ProtocolError):
        FrameParser().feed(b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n")

"""JSON log lines carry the call's ids wherever the record was logged from within the call."""

from __future__ import annotations

import io
import logging

import gevent
import orjson

from robocall.logs import CallContextFilter, call_context, make_handler
from robocall.store.records import CallTicket


def _ticket(call_id: int, channel_uuid: str) -> CallTicket:
    return CallTicket(
        call_id=call_id, request_id="req-1", organization_id="org_a", phone="+6580000001",
        caller="+6582674904", properties={}, channel_uuid=channel_uuid,
        line_variable=("accountcode", "org_a"), record=False,
    )


def _capture(json_lines: bool) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = make_handler(json_lines=json_lines, stream=stream)
    logger = logging.getLogger(f"robocall.test.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream, handler


def test_a_line_logged_inside_a_call_carries_its_ids_as_json():
    # given a JSON handler
    logger, stream, _ = _capture(json_lines=True)
    # when two calls log at once in their own greenlets, and one line is logged outside any call
    def run(call_id: int, channel_uuid: str) -> None:
        with call_context(_ticket(call_id, channel_uuid)):
            gevent.sleep(0)  # interleave with the other call
            logger.warning("call %s: no event in %s s", call_id, 5)

    gevent.joinall([gevent.spawn(run, 7, "uuid-7"), gevent.spawn(run, 8, "uuid-8")])
    logger.info("outside any call")
    # then each line is one JSON object naming its own call and channel
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    by_call = {line.get("call_id"): line for line in lines}
    assert by_call["7"]["channel_uuid"] == "uuid-7"
    assert by_call["8"]["channel_uuid"] == "uuid-8"
    assert by_call["7"]["request_id"] == "req-1" and by_call["7"]["organization"] == "org_a"
    assert by_call["7"]["message"] == "call 7: no event in 5 s"
    assert by_call["7"]["level"] == "WARNING"
    outside = by_call[None]
    assert outside["message"] == "outside any call"
    assert "channel_uuid" not in outside


def test_an_exception_is_kept_in_the_json_line():
    logger, stream, _ = _capture(json_lines=True)
    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("reader failed")
    line = orjson.loads(stream.getvalue())
    assert line["message"] == "reader failed"
    assert "ValueError: bad frame" in line["exception"]


def test_text_lines_stay_plain_and_explicit_ids_win_over_the_context():
    # given a text handler: the format an admin reads on a terminal
    logger, stream, _ = _capture(json_lines=False)
    with call_context(_ticket(9, "uuid-9")):
        logger.info("hello")
    assert stream.getvalue().rstrip().endswith("INFO " + logger.name + ": hello")
    # and a record that names its own call keeps it
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.call_id = "42"
    with call_context(_ticket(9, "uuid-9")):
        CallContextFilter().filter(record)
    assert record.call_id == "42" and record.channel_uuid == "uuid-9"

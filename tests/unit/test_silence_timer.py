"""A call's silence timer (robocall.calls.following.SilenceTimer): the queue's items as they
come, ``Empty`` once nothing came for the patience — one timer per call, not one per wait."""

from __future__ import annotations

import time

import gevent
import gevent.queue
import pytest

from robocall.calls.following import WAKE, SilenceTimer

PATIENCE = 0.1


def _feed(queue: gevent.queue.Queue, items: list[str], every: float) -> None:
    for item in items:
        gevent.sleep(every)
        queue.put(item)


def test_items_come_in_order_and_silence_is_told_only_after_the_patience() -> None:
    # Given a queue fed an item every third of the patience, for three times the patience
    queue: gevent.queue.Queue = gevent.queue.Queue()
    queue.put("first")
    timer = SilenceTimer(queue)
    items = [f"item-{n}" for n in range(9)]
    feeder = gevent.spawn(_feed, queue, items, PATIENCE / 3)

    # Then every item comes, in order, and no silence in between
    got = [timer.next_item(PATIENCE) for _ in range(10)]
    assert got == ["first", *items]
    feeder.join()

    # When nothing more comes, then the silence is told, not before the patience ran out
    started = time.monotonic()
    with pytest.raises(gevent.queue.Empty):
        timer.next_item(PATIENCE)
    assert time.monotonic() - started >= PATIENCE * 0.9
    # and the next wait counts from then: an item that comes meanwhile is handed out
    gevent.spawn_later(PATIENCE / 2, queue.put, "late")
    assert timer.next_item(PATIENCE) == "late"
    timer.close()


def test_a_shorter_patience_is_kept_although_the_timer_was_armed_for_a_longer_one() -> None:
    # Given a wait armed for a minute, ended by an item
    queue: gevent.queue.Queue = gevent.queue.Queue()
    timer = SilenceTimer(queue)
    gevent.spawn_later(0.01, queue.put, "answer")
    assert timer.next_item(60.0) == "answer"
    # When the next wait has a short patience (robocall ended the call: confirm soon)
    started = time.monotonic()
    with pytest.raises(gevent.queue.Empty):
        timer.next_item(PATIENCE)
    # Then the silence is told after that patience, not the minute
    assert time.monotonic() - started < 30.0
    timer.close()


def test_a_timer_gone_off_early_is_rearmed_for_what_is_left() -> None:
    # Given a wait whose timer went off while items kept coming (the deadline moved on)
    queue: gevent.queue.Queue = gevent.queue.Queue()
    timer = SilenceTimer(queue)
    gevent.spawn(_feed, queue, ["a", "b", "c"], PATIENCE * 0.6)
    assert [timer.next_item(PATIENCE) for _ in range(3)] == ["a", "b", "c"]
    # Then its wake-ups never reach the caller, and silence comes a patience after "c"
    started = time.monotonic()
    with pytest.raises(gevent.queue.Empty):
        timer.next_item(PATIENCE)
    assert time.monotonic() - started >= PATIENCE * 0.9
    timer.close()


def test_peeking_passes_over_the_timers_wakes() -> None:
    queue: gevent.queue.Queue = gevent.queue.Queue()
    queue.put(WAKE)
    queue.put(WAKE)
    queue.put("event")
    assert SilenceTimer.skip_wakes(queue, 1.0) == "event"
    assert queue.get_nowait() == "event"  # peeked, still there; the wakes are gone
    with pytest.raises(gevent.queue.Empty):
        SilenceTimer.skip_wakes(queue, 0.01)


def test_a_closed_timer_wakes_nobody() -> None:
    queue: gevent.queue.Queue = gevent.queue.Queue()
    timer = SilenceTimer(queue)
    gevent.spawn_later(0.01, queue.put, "x")
    assert timer.next_item(PATIENCE) == "x"
    # a wait armed the timer; after close, its time passes and nothing lands on the queue
    gevent.spawn_later(0.01, queue.put, "y")
    assert timer.next_item(PATIENCE) == "y"
    timer.close()
    gevent.sleep(PATIENCE * 1.5)
    assert queue.qsize() == 0

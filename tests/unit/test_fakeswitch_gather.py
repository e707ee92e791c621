"""play_and_get_digits semantics of the fake switch, driven in-process (no sockets).

A listener records the switch's events; scripted callees press keys; the switch runs 10x fast
and every wait ends on an event, never on a clock reading. Keys come 500 scripted ms after the
answer, well after the gather has started, so a busy machine does not reorder them.
"""

from __future__ import annotations

import uuid

from gevent.event import AsyncResult

from robocall.testing import Callee, CalleeBook, Press
from robocall.testing.channels import Message
from robocall.testing.events import Event
from robocall.testing.switch import Switch


class Recorder:
    """A listener that keeps every event and resolves waits on one of them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.waiting: list[tuple[str, str, AsyncResult[Event]]] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)
        for entry in list(self.waiting):
            name, application_uuid, result = entry
            if event.name == name and event.get("Application-UUID") == application_uuid:
                self.waiting.remove(entry)
                result.set(event)

    def expect(self, name: str, application_uuid: str) -> AsyncResult[Event]:
        result: AsyncResult[Event] = AsyncResult()
        self.waiting.append((name, application_uuid, result))
        return result


def gather(callee: Callee, argument: str) -> Event:
    """Originate to ``callee``, run play_and_get_digits once parked, return its completion."""
    switch = Switch(CalleeBook(default=callee), time_scale=0.1)
    recorder = Recorder()
    switch.listeners.append(recorder)
    leg = str(uuid.uuid4())
    parked: AsyncResult[str] = AsyncResult()
    switch.spawn(switch.originate, f"{{origination_uuid={leg}}}user/1@x &park()", parked.set)
    assert parked.get(timeout=10) == f"+OK {leg}\n"
    done = recorder.expect("CHANNEL_EXECUTE_COMPLETE", "pagd")
    switch.channels[leg].inbox.put(Message("play_and_get_digits", argument, "pagd"))
    event = done.get(timeout=10)
    switch.greenlets.kill()
    return event


def test_terminator_ends_a_multi_digit_entry() -> None:
    # Given a callee typing 4 2 then #
    callee = Callee(presses=(Press(500, "42#", gap_ms=100),))

    # When up to 4 digits are gathered with # as terminator
    done = gather(callee, "1 4 1 3000 # silence_stream://50 silence_stream://50 d \\d+ 1000")

    # Then the digits without the terminator are the result
    assert done.get("variable_d") == "42"
    assert done.get("variable_read_result") == "success"
    assert done.get("variable_read_terminator_used") == "#"


def test_digit_timeout_ends_collection_with_what_was_typed() -> None:
    # Given a callee typing 7 and 8, then nothing
    callee = Callee(presses=(Press(500, "78", gap_ms=100),))

    # When up to 4 digits are gathered with a 500 ms digit timeout
    done = gather(callee, "1 4 1 3000 # silence_stream://50 silence_stream://50 d \\d+ 500")

    # Then the two digits are taken
    assert done.get("variable_d") == "78"


def test_max_digits_ends_collection_at_once() -> None:
    # Given a callee typing 1 2 3
    callee = Callee(presses=(Press(500, "123", gap_ms=100),))

    # When exactly 2 digits are wanted
    done = gather(callee, "2 2 1 3000 # silence_stream://50 silence_stream://50 d \\d+ 1000")

    # Then the first two are the result
    assert done.get("variable_d") == "12"


def test_too_few_digits_fail_without_an_invalid_input() -> None:
    # Given a callee typing a single 5
    callee = Callee(presses=(Press(500, "5"),))

    # When at least 2 digits are wanted, with one try
    done = gather(callee, "2 4 1 3000 # silence_stream://50 silence_stream://50 d \\d+ 300")

    # Then the read failed and nothing counts as an invalid entry
    assert done.get("variable_read_result") == "failure"
    assert done.get("variable_d") is None
    assert done.get("variable_d_invalid") is None


def test_callee_hangup_during_gather_is_a_failure() -> None:
    # Given a callee that hangs up while the gather waits
    callee = Callee(hangup_after_ms=500)

    # When digits are gathered
    done = gather(callee, "1 1 3 3000 # silence_stream://50 silence_stream://50 d \\d+ 1000")

    # Then it ends at once with read_result=failure
    # (docs/design.md, "From the scripted-callee lab", 4)
    assert done.get("variable_read_result") == "failure"
    assert done.get("Answer-State") == "hangup"

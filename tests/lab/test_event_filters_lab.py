"""robocall's Event Socket filters on a real FreeSWITCH 1.11.1 (marker `lab`): its own legs'
events and its organizations' lines come, a leg of neither (the scripted callee's own leg on
profile `lab`, an unmarked call) does not, and a call that becomes a line after its creation
comes from its first event carrying the variable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import gevent
import pytest

from robocall.dispatch.lines import LineRule, event_filters
from robocall.esl import commands
from robocall.esl.client import EslClient
from robocall.esl.protocol import Event
from tests.lab.conftest import LabSwitch

pytestmark = pytest.mark.lab


@pytest.fixture
def filtered(lab_switch: LabSwitch) -> Iterator[tuple[EslClient, list[Event]]]:
    client = EslClient(
        lab_switch.host, lab_switch.port, lab_switch.password, command_timeout=10,
        command_connection=True,
        event_filters=event_filters([LineRule("accountcode", "org-filter-lab")]),
    )
    seen: list[Event] = []
    client.add_event_listener(seen.append)
    client.connect()
    yield client, seen
    client.close()


def _dial(client: EslClient, dial: str, variables: str) -> str:
    call = str(uuid.uuid4())
    command = f"originate {{origination_uuid={call}{variables}}}{dial} &park()"
    assert client.bgapi(command).wait(timeout=20).startswith("+OK")
    return call


def _names(seen: list[Event], call: str) -> list[str]:
    return [event.name for event in seen if event.unique_id == call]


def test_only_robocalls_legs_and_lines_come(
    lab_switch: LabSwitch, filtered: tuple[EslClient, list[Event]]
) -> None:
    client, seen = filtered
    # given three calls to the scripted callee that answers and stays (each also makes the
    # callee's own leg on the same switch): robocall's, an unmarked one, and one that becomes
    # the organization's line after it was answered
    dial = lab_switch.dial("03")
    robo = _dial(client, dial, ",robocall_call_id=c-filter,accountcode=org-filter-lab")
    unmarked = _dial(client, dial, "")
    late = _dial(client, dial, "")
    client.api(f"uuid_setvar {late} accountcode ORG-FILTER-LAB")  # matched without case
    gevent.sleep(0.5)
    # when all three are hung up
    for call in (robo, unmarked, late):
        client.api(commands.uuid_kill(call))
    with gevent.Timeout(10, AssertionError("no HANGUP_COMPLETE of the late line")):
        while "CHANNEL_HANGUP_COMPLETE" not in _names(seen, late):
            gevent.sleep(0.1)
    gevent.sleep(0.5)

    # then robocall's leg came whole, the late line from its hangup on, nothing else of any
    # channel (not the callees' legs, not the unmarked call)
    robo_names = _names(seen, robo)
    assert robo_names[0] == "CHANNEL_CREATE"
    assert {"CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE"} <= set(robo_names)
    assert _names(seen, unmarked) == []
    assert "CHANNEL_CREATE" not in _names(seen, late)
    assert "CHANNEL_HANGUP" in _names(seen, late)
    others = {event.unique_id for event in seen if event.unique_id} - {robo, late}
    assert others == set()

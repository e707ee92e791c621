"""robocall asks the switch for the events it reads and no others (Event Socket filters,
robocall.dispatch.lines.event_filters): its own legs, transfers included, and every channel of
an organization's lines, even one that becomes a line after it was created. A leg of no
organization (a callee's, on a lab switch) never reaches it."""

from __future__ import annotations

import secrets

from robocall.esl.protocol import Event
from robocall.testing import Callee
from tests.support.service import wait_for


def test_filters_keep_lines_and_own_legs_and_drop_the_rest(start_service):
    # Given robocall over FakeSwitch, the organization added after it connected (its filter
    # is added at runtime), and every event its events connection delivers recorded
    running = start_service({"1000": Callee(answer_after_ms=100, hangup_after_ms=600)},
                            lines=4, cps=100.0)
    fake = running.fake
    delivered: list[Event] = []
    client = running.service.pool.first.client
    client.add_event_listener(delivered.append)
    assert ("variable_accountcode", running.org_id) in client.event_filters
    wait_for(lambda: any(("variable_accountcode", running.org_id) in c.filters
                         for c in fake.connections), "the organization's filter on the switch")
    report = running.service.dispatcher.report

    # When another app's call on the organization's lines starts, a callee-like leg of no
    # organization starts, and a third call becomes the organization's only after its creation
    pbx = fake.start_external_call({"accountcode": running.org_id})
    callee_leg = fake.start_external_call({})
    late = fake.start_external_call({"sip_from_user": "1001"})
    wait_for(lambda: report(running.org_id).other == 1, "the other app's line counted")
    # (its dial plan's `set` app: the variable, then CHANNEL_EXECUTE_COMPLETE carrying it)
    channel = fake.switch.channels[late]
    channel.set_variable("accountcode", running.org_id)
    channel.emit("CHANNEL_EXECUTE_COMPLETE", [
        ("Application", "set"), ("Application-Data", f"accountcode={running.org_id}"),
        ("Application-Response", "_none_"), ("Application-UUID", secrets.token_hex(8))])

    # Then the late one is counted from its first event that carries the variable
    wait_for(lambda: report(running.org_id).other == 2, "the late line counted")

    # When robocall makes calls that are transferred (a second leg, marked as robocall's)
    transfer = {"steps": [{"name": "transfer", "destination": "Ext:1000"}]}
    phones = ("+6580000001", "+6580000002")
    body = {"requestId": f"filters-{secrets.token_hex(3)}", "callFlow": transfer,
            "destinations": [{"phone": phone, "caller": "+6582674904"} for phone in phones]}
    assert running.post_call(body).status_code == 200
    final = running.wait_until_final(body["requestId"])

    # Then they are followed to their end, transfers included
    assert final["counts"] == {"completed": 2}, final
    bridged = [e for e in delivered if e.name == "CHANNEL_BRIDGE"]
    assert len(bridged) == 2
    b_legs = {e.get("Other-Leg-Unique-ID") for e in bridged}
    assert b_legs <= {e.unique_id for e in delivered if e.name == "CHANNEL_CREATE"}

    # When the other calls end, their lines are released
    for channel_uuid in (pbx, late, callee_leg):
        fake.end_external_call(channel_uuid)
    wait_for(lambda: report(running.org_id).other == 0, "the other lines released")

    # And nothing of the callee-like leg, nor of the late call before it became a line,
    # ever reached robocall; every robo leg's event did
    assert not [e for e in delivered if e.unique_id == callee_leg]
    late_events = [e.name for e in delivered if e.unique_id == late]
    assert "CHANNEL_CREATE" not in late_events and "CHANNEL_HANGUP_COMPLETE" in late_events
    robo = {e.unique_id for e in delivered if e.get("variable_robocall_call_id")}
    for unique_id in robo:
        names = [e.name for e in delivered if e.unique_id == unique_id]
        assert names[0] == "CHANNEL_CREATE" and "CHANNEL_HANGUP_COMPLETE" in names
    # but for the completion of the park() each leg waited in, which the switch keeps
    completions = [e.get("Application") for e in delivered if e.unique_id in robo
                   and e.name == "CHANNEL_EXECUTE_COMPLETE"]
    assert completions and "park" not in completions

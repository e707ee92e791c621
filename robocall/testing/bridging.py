"""The ``bridge`` application: dial a B leg from a parked A leg and bridge the two.

Event orders follow esl-transfer-answered/busy/noanswer.txt: the B leg's CREATE/PROGRESS/
ANSWER, A's CHANNEL_BRIDGE, and when either side ends, B's HANGUP/HANGUP_COMPLETE, A's
CHANNEL_UNBRIDGE and A's EXECUTE_COMPLETE(bridge), then B's DESTROY (returned as the follow-up
the session runs after that EXECUTE_COMPLETE).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import gevent

from robocall.testing.callees import DialString
from robocall.testing.channels import Channel

DEFAULT_CALL_TIMEOUT_S = 60


def run_bridge(a_leg: Channel, dial: DialString) -> Callable[[], None] | None:
    """Bridge ``a_leg`` to the callee of ``dial``; returns what must follow EXECUTE_COMPLETE."""
    from robocall.testing.apps import continues_after

    switch = a_leg.switch
    # {originate_timeout=N} in the dial string, else the A leg's call_timeout (the A leg's own
    # originate_timeout does not carry over: esl-transfer-noanswer.txt).
    timeout_s = _seconds(dial.variables.get("originate_timeout")
                         or a_leg.variables.get("call_timeout"))
    refused = switch.admit()
    if refused:
        _record_failure(a_leg, refused)
        if not continues_after(a_leg, refused):
            a_leg.hangup(refused, "send_bye")
        return None
    variables = {"origination_caller_id_number": a_leg.profile.caller_id_number,
                 **dial.variables, "signal_bond": a_leg.uuid, "originator": a_leg.uuid,
                 "originating_leg_uuid": a_leg.uuid,
                 "ignore_early_media": a_leg.variables.get("ignore_early_media", "false"),
                 "max_forwards": "69", "originator_codec": "PCMU@8000h@20i@64000b"}
    b_leg = switch.new_channel(str(uuid.uuid4()), dial.channel_name, dial.number, variables,
                               switch.callees.lookup(dial.number, dial.endpoint), kind="bleg")
    b_leg.other, b_leg.other_type, b_leg.call_uuid = a_leg, "originator", a_leg.uuid
    b_leg.other_callee_name = bool(a_leg.profile.callee_id_name)
    b_leg.create()
    callee = b_leg.callee
    if callee.refusal:
        cause = callee.refusal[0]
        b_leg.hangup(cause, "recv_refuse")
        b_leg.report()
        _record_failure(a_leg, cause)
        if continues_after(a_leg, cause):
            return b_leg.destroy
        b_leg.destroy()
        a_leg.hangup(cause, "send_bye")
        return None
    if callee.ring:
        b_leg.progress()
        a_leg.profile.callee_id_name = "Outbound Call"
    timeout_ms = timeout_s * 1000
    answers = callee.outcome == "answer" and callee.answer_after_ms < timeout_ms
    if not a_leg.wait(callee.answer_after_ms if answers else timeout_ms):
        b_leg.hangup("ORIGINATOR_CANCEL", "send_cancel")
        _record_failure(a_leg, "ORIGINATOR_CANCEL")
        return b_leg.finish
    if not answers:
        b_leg.hangup("NO_ANSWER", "send_cancel")
        _record_failure(a_leg, "NO_ANSWER")
        return b_leg.finish
    _bridged(a_leg, b_leg)
    gevent.wait([a_leg.ended, b_leg.ended], count=1)
    if b_leg.up:
        b_leg.hangup("NORMAL_CLEARING", "send_bye")
    b_leg.report()
    cause = b_leg.hangup_cause or "NORMAL_CLEARING"
    a_leg.variables.update({"bridge_hangup_cause": cause, "last_bridge_hangup_cause": cause,
                            "last_bridge_to": b_leg.uuid, "bridge_uuid": b_leg.uuid,
                            "bridge_channel": b_leg.name})
    a_leg.bridged_to = None
    a_leg.emit("CHANNEL_UNBRIDGE", before_state=_bridge_ids(a_leg, b_leg))
    if a_leg.up and a_leg.variables.get("hangup_after_bridge") == "true":
        a_leg.hangup(cause, "send_bye")
    return b_leg.destroy


def _bridged(a_leg: Channel, b_leg: Channel) -> None:
    b_leg.answer()
    a_leg.profile.callee_id_name = "Outbound Call"
    b_leg.variables.update({"bridge_uuid": a_leg.uuid, "last_bridge_to": a_leg.uuid,
                            "bridge_to": a_leg.uuid, "bridge_channel": a_leg.name,
                            "last_bridge_role": "originatee"})
    b_leg.state, b_leg.state_number, b_leg.call_state = "CS_EXCHANGE_MEDIA", 5, "ACTIVE"
    now = a_leg.switch.factory.micros()
    a_leg.times.bridged = b_leg.times.bridged = now
    a_leg.other, a_leg.other_type, a_leg.bridged_to = b_leg, "originatee", b_leg
    a_leg.variables.update({"originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS",
                            "originate_causes": f"{b_leg.uuid};NONE", "signal_bond": b_leg.uuid,
                            "originate_signal_bond": b_leg.uuid,
                            "last_sent_callee_id_name": "Outbound Call",
                            "last_sent_callee_id_number": b_leg.number,
                            "last_bridge_proto_specific_hangup_cause": "sip:200"})
    a_leg.emit("CHANNEL_BRIDGE", before_state=_bridge_ids(a_leg, b_leg))
    b_leg.spawn_callee_script()


def _record_failure(a_leg: Channel, cause: str) -> None:
    from robocall.testing.apps import dialstatus

    a_leg.variables.update({"originate_disposition": cause, "DIALSTATUS": dialstatus(cause),
                            "originate_failed_cause": cause, "last_bridge_hangup_cause": cause})


def _bridge_ids(a_leg: Channel, b_leg: Channel) -> list[tuple[str, str]]:
    return [("Bridge-A-Unique-ID", a_leg.uuid), ("Bridge-B-Unique-ID", b_leg.uuid)]


def _seconds(value: str | None) -> int:
    try:
        return int(value) if value else DEFAULT_CALL_TIMEOUT_S
    except ValueError:
        return DEFAULT_CALL_TIMEOUT_S

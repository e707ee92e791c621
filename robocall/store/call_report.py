"""How the store keeps a call's report: its step results and legs, as a JSON of its own.

Each step is kept as an object whose keys are :class:`~robocall.flow.actions.StepResult`'s
field names and whose values are the storage codes of ``robocall.flow.status`` — typed data,
not the client's JSON: ``robocall.api.contract`` builds that from the decoded values, so the
wire format can change without touching what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from robocall.flow.actions import StepResult
from robocall.flow.status import CallState, DialResult, Leg, LegKind, StepName, StepStatus


def step_record(result: StepResult) -> dict[str, Any]:
    """``result`` as the store keeps it (fields that do not apply are left out)."""
    record: dict[str, Any] = {
        "step_id": result.step_id,
        "step_name": result.step_name.value,
        "status": result.status.value,
        "call_state": result.call_state.value,
        "call_status": result.call_status.value,
    }
    if result.user_pressed_digits is not None:
        record["user_pressed_digits"] = result.user_pressed_digits
    if result.transfer_status is not None:
        record["transfer_status"] = result.transfer_status.value
    if result.attempts is not None:
        record["attempts"] = result.attempts
    return record


def step_from_record(record: Mapping[str, Any]) -> StepResult:
    """A stored step back as a :class:`StepResult`."""
    transfer = record.get("transfer_status")
    return StepResult(
        step_id=record["step_id"],
        step_name=StepName(record["step_name"]),
        status=StepStatus(record["status"]),
        call_state=CallState(record["call_state"]),
        call_status=DialResult(record["call_status"]),
        user_pressed_digits=record.get("user_pressed_digits"),
        transfer_status=DialResult(transfer) if transfer is not None else None,
        attempts=record.get("attempts"),
    )


def leg_record(leg: Leg) -> dict[str, str]:
    """``leg`` as the store keeps it."""
    record = {"uuid": leg.uuid, "kind": leg.kind.value, "dest": leg.dest}
    if leg.switch:
        record["switch"] = leg.switch
    return record


def leg_from_record(record: Mapping[str, Any]) -> Leg:
    return Leg(uuid=record["uuid"], kind=LegKind(record["kind"]), dest=record["dest"],
               switch=record.get("switch", ""))


def decode_steps(text: str | bytes) -> tuple[StepResult, ...]:
    """A stored ``steps`` column as step results, in the order they happened."""
    return tuple(map(step_from_record, orjson.loads(text)))


def decode_legs(text: str | bytes) -> tuple[Leg, ...]:
    """A stored ``monitor`` column as legs, in the order they appeared."""
    return tuple(map(leg_from_record, orjson.loads(text)))


def with_step(records: Sequence[Mapping[str, Any]], result: StepResult) -> list[Any]:
    """The stored steps after ``result``: it replaces the last one when that is the same step
    reported while running (a transfer's progress), else it is appended."""
    kept = list(records)
    if kept and kept[-1].get("status") == StepStatus.RUNNING.value and (
        kept[-1].get("step_id") == result.step_id
    ):
        kept.pop()
    kept.append(step_record(result))
    return kept


# --- the shapes stored before migration 5: the client's JSON --------------------------------

def upgrade_step_record(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A step stored as a ``callFlowSteps`` entry (``stepName``, ``info``) as the store's own
    record; a record already in that form is returned as it is. The step's id was not kept
    then: it is left empty (only a running transfer's progress is ever matched by it)."""
    if "stepName" not in entry:
        return dict(entry)
    info = entry.get("info") or {}
    name = StepName(entry["stepName"])
    status = info.get("status") or StepStatus.ERROR_HANGUP.value
    digits = info.get("userPressedDigits")
    transfer = info.get("transfer_status")
    return step_record(
        StepResult(
            step_id="",
            step_name=name,
            status=StepStatus(status),
            call_state=CallState(info.get("call_state") or CallState.ENDED.value),
            call_status=DialResult(info.get("call_status") or DialResult.ANSWERED.value),
            user_pressed_digits=(digits or "") if name is StepName.GATHER else None,
            transfer_status=DialResult(transfer) if transfer else None,
        )
    )


def upgrade_leg_record(entry: Mapping[str, Any]) -> dict[str, str]:
    """A leg stored as a ``monitorData`` entry (``type``) as the store's own record."""
    if "type" not in entry:
        return dict(entry)
    return leg_record(Leg(entry["uuid"], LegKind(entry["type"]), entry.get("dest", "")))

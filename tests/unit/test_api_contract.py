"""The wire format's one module against the document that describes it: every status member
has a wire name, and the names are exactly the OpenAPI document's enums."""

from __future__ import annotations

from robocall.api import contract
from robocall.api.schema import openapi_document
from robocall.flow.status import (
    CallState,
    CallStatus,
    DialResult,
    LegKind,
    RequestStatus,
    StepName,
    StepStatus,
)

SCHEMAS = openapi_document()["components"]["schemas"]
INFO = SCHEMAS["CallFlowStep"]["properties"]["info"]["properties"]


def test_every_member_of_every_status_enum_has_a_wire_name():
    for table, enum in (
        (contract.REQUEST_STATUS, RequestStatus),
        (contract.CALL_STATUS, CallStatus),
        (contract.DIAL_RESULT, DialResult),
        (contract.STEP_NAME, StepName),
        (contract.CALL_STATE, CallState),
        (contract.STEP_STATUS, StepStatus),
        (contract.LEG_KIND, LegKind),
    ):
        assert set(table) == set(enum)


def test_the_wire_names_are_the_documents_enums():
    assert set(contract.REQUEST_STATUS.values()) == set(
        SCHEMAS["RequestStatus"]["properties"]["status"]["enum"])
    assert set(contract.CALL_STATUS.values()) == set(SCHEMAS["CallStatus"]["enum"])
    assert set(contract.DIAL_RESULT.values()) == set(SCHEMAS["DialResult"]["enum"])
    assert set(contract.STEP_NAME.values()) == set(
        SCHEMAS["CallFlowStep"]["properties"]["stepName"]["enum"])
    assert set(contract.CALL_STATE.values()) == set(INFO["call_state"]["enum"])
    assert set(contract.STEP_STATUS.values()) == set(INFO["status"]["enum"])
    assert set(contract.DIAL_RESULT.values()) | {""} == set(INFO["transfer_status"]["enum"])
    assert set(contract.LEG_KIND.values()) == set(
        SCHEMAS["MonitorData"]["properties"]["type"]["enum"])


def test_success_is_spelled_as_the_b3_contract_spells_it():
    assert contract.STEP_STATUS[StepStatus.SUCCESS_OK] == "sucess_ok"

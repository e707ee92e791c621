"""Meaning checks of a (schema-valid) request body, and the model it becomes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from robocall.errors import InputError
from robocall.flow.model import Destination, Gather, Gender, Play, Transfer, TransferKind
from robocall.flow.parse import parse_call_flow, parse_call_request

SEED = json.loads((Path(__file__).parents[1] / "support" / "seed_example_request.json").read_text())
LANGUAGES = frozenset({"en", "vi"})


def _parse(body: dict[str, Any], max_destinations: int = 100):
    return parse_call_request(body, languages=LANGUAGES, max_destinations=max_destinations)


def _seed() -> dict[str, Any]:
    return copy.deepcopy(SEED)


def test_the_seed_example_becomes_its_model():
    request = _parse(_seed())
    assert request.request_id == "request_10"
    assert request.enable_call_recording is True
    assert [d.phone for d in request.destinations] == ["+84917660247", "+84912860330"]
    assert request.destinations[0].properties["amount"] == "200,000$"
    play, gather = request.call_flow.steps
    assert isinstance(play, Play)
    assert (play.message.text, play.message.lang, play.message.gender) == (
        "thanks {{name}}", "en", Gender.MALE)
    assert (play.message.pitch, play.message.rate) == (5, 5)
    assert isinstance(gather, Gather) and gather.max_retries == 3
    one, zero = gather.branches
    # "default": "false" and "true" are strings in the seed
    assert (one.digits, one.is_default) == ("1", False)
    assert (zero.digits, zero.is_default) == ("0", True)
    assert gather.default_branch is zero
    assert gather.branch_for("1") is one and gather.branch_for("9") is None
    inner = one.flow.steps[0]
    assert isinstance(inner, Gather) and inner.branches[0].digits is None
    assert inner.branches[0].is_default is True
    transfer = zero.flow.steps[0]
    assert transfer == Transfer(kind=TransferKind.EXTENSION, target="1000")


def test_numbers_in_properties_are_kept_as_text():
    body = _seed()
    body["destinations"][0]["properties"] = {"name": "A", "amount": 200, "dueDate": 1.5}
    properties = _parse(body).destinations[0].properties
    assert properties == {"name": "A", "amount": "200", "dueDate": "1.5"}


def test_a_destination_without_properties_has_none_when_no_message_needs_them():
    body = _seed()
    body["callFlow"] = {"steps": [{"name": "play", "message": {"msg": "hello"}}]}
    del body["destinations"][0]["properties"]
    assert _parse(body).destinations[0].properties == {}


def test_a_transfer_to_a_number_is_a_second_line():
    body = _seed()
    body["callFlow"] = {"steps": [{"name": "transfer", "destination": "+6591991191"}]}
    step = _parse(body).call_flow.steps[0]
    assert step == Transfer(kind=TransferKind.NUMBER, target="+6591991191")


def test_boolean_defaults_are_accepted_too():
    body = _seed()
    body["callFlow"]["steps"][1]["branches"][1]["default"] = True
    body["callFlow"]["steps"][1]["branches"][0]["default"] = False
    gather = _parse(body).call_flow.steps[1]
    assert [b.is_default for b in gather.branches] == [False, True]


def test_a_stored_call_flow_parses_back_to_the_same_model():
    assert parse_call_flow(SEED["callFlow"], languages=LANGUAGES) == _parse(_seed()).call_flow


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["destinations"][1]["properties"].pop("dueDate"),
         'destinations[1].properties: missing "dueDate", which callFlow.steps[1].message.msg uses'),
        (lambda b: b["destinations"][0]["properties"].update(name="x" * 994),
         "destinations[0]: callFlow.steps[0].message.msg is 1001 characters after substitution"
         " (at most 1000)"),
        (lambda b: b["callFlow"]["steps"][0]["message"].update(lang="fr"),
         'callFlow.steps[0].message.lang: "fr" is not available; available: en, vi'),
        (lambda b: b["callFlow"]["steps"][0]["message"].update(msg="{{ name.title() }}"),
         "callFlow.steps[0].message.msg: only {{ name }} placeholders are allowed"
         " (no attributes, filters or code)"),
        (lambda b: b["callFlow"]["steps"][1]["branches"][0].update(default="true"),
         "callFlow.steps[1].branches[1].default: a gather has at most one default"),
        (lambda b: b["callFlow"]["steps"][1]["branches"][1].update(digit="1"),
         'callFlow.steps[1].branches[1].digit: "1" is used by another branch'),
        (lambda b: b["callFlow"]["steps"].append({"name": "transfer", "destination": "Ext:1"}),
         'callFlow.steps[2].destination: "Ext:1" is neither Ext:<2-10 digits> nor an E.164'
         " number"),
    ],
)
def test_meaning_faults_name_their_path(change: Any, message: str):
    body = _seed()
    change(body)
    with pytest.raises(InputError) as raised:
        _parse(body)
    assert str(raised.value) == message


def test_the_destination_limit_is_an_argument():
    with pytest.raises(InputError, match="^destinations: 2 destinations; at most 1 are allowed$"):
        _parse(_seed(), max_destinations=1)


def test_depth_is_counted_through_branches():
    flow: dict[str, Any] = {"steps": [{"name": "play", "message": {"msg": "end"}}]}
    for _ in range(10):  # 11 levels
        flow = {"steps": [{"name": "gather", "message": {"msg": "m"},
                           "branches": [{"digit": "1", "callFlow": flow}]}]}
    body = _seed()
    body["callFlow"] = flow
    with pytest.raises(InputError, match="nest at most 10 levels deep"):
        _parse(body)
    body["callFlow"] = flow["steps"][0]["branches"][0]["callFlow"]  # 10 levels
    assert _parse(body).call_flow.steps[0].name == "gather"


def test_parsed_destinations_equal_ones_built_the_usual_way():
    # parse fills Destination instances directly for speed; they must be the same values
    parsed = _parse(_seed()).destinations[0]
    built = Destination(phone="+84917660247", caller="+6582674904",
                        properties=SEED["destinations"][0]["properties"])
    assert parsed == built
    assert type(parsed) is Destination
    with pytest.raises(AttributeError):
        parsed.phone = "+1"  # type: ignore[misc]  # still frozen


def test_a_large_request_pauses_between_chunks_of_destinations():
    # given a request of 25,000 destinations and a pause that counts its calls
    body = _seed()
    body["destinations"] = body["destinations"] * 12_500
    pauses: list[int] = []
    # when it is parsed
    request = parse_call_request(body, languages=LANGUAGES, max_destinations=100_000,
                                 pause=lambda: pauses.append(1))
    # then the caller got its chance to run others several times along the way
    assert len(request.destinations) == 25_000
    assert len(pauses) >= 4

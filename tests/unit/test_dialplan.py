"""Dial strings come from configured templates and only ever carry checked digits."""

from __future__ import annotations

import pytest

from robocall.calls.dialplan import DialPlan
from robocall.errors import ConfigError, UnsafeValue
from robocall.flow.model import Transfer, TransferKind


def test_default_templates():
    plan = DialPlan()
    assert plan.number("+6588893322") == "sofia/gateway/robocall/+6588893322"
    assert plan.extension("1000") == "user/1000@127.0.0.1"


def test_lab_template_reaches_the_scripted_callees():
    plan = DialPlan(number_template="sofia/internal/{number}@127.0.0.1:5090")
    assert plan.number("+6580000001") == "sofia/internal/+6580000001@127.0.0.1:5090"


def test_transfer_targets():
    plan = DialPlan(domain="pbx.example.org")
    assert plan.transfer(Transfer(TransferKind.EXTENSION, "1000")) == "user/1000@pbx.example.org"
    assert (
        plan.transfer(Transfer(TransferKind.NUMBER, "+6591991191"))
        == "sofia/gateway/robocall/+6591991191"
    )


@pytest.mark.parametrize(
    "phone", ["", "+0123", "123,456", "+65}{x", "65${x}", "+65\n99", "1" * 16, "abc"]
)
def test_unsafe_numbers_never_reach_a_dial_string(phone):
    with pytest.raises(UnsafeValue):
        DialPlan().number(phone)


@pytest.mark.parametrize("ext", ["1", "12345678901", "10 00", "1000,", "ext1000"])
def test_unsafe_extensions_are_refused(ext):
    with pytest.raises(UnsafeValue):
        DialPlan().extension(ext)


@pytest.mark.parametrize(
    ("number_template", "extension_template", "complaint"),
    [
        ("sofia/gateway/{gw}/{number}", "user/{ext}", "unknown placeholder"),
        ("sofia/gateway/robocall/", "user/{ext}", "must contain {number}"),
        ("sofia/gateway/{gateway}/{number}", "user/1000", "must contain {ext}"),
        ("{number}${x}", "user/{ext}", "not allowed"),
        ("{number", "user/{ext}", "ROBOCALL_DIAL_TEMPLATE"),
    ],
)
def test_bad_templates_are_configuration_errors(number_template, extension_template, complaint):
    with pytest.raises(ConfigError, match=complaint.replace("{", r"\{").replace("$", r"\$")):
        DialPlan(number_template=number_template, extension_template=extension_template)


def test_bad_gateway_name_is_a_configuration_error():
    with pytest.raises(ConfigError, match="gateway"):
        DialPlan(gateway="trunk,evil")

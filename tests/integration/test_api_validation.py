"""Bad input over real HTTP: a 400 naming the JSON path, and nothing stored (both databases)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from robocall.api.auth import API_KEY_HEADER
from tests.support.api_server import RunningApi
from tests.support.requests_data import nested_flow, seed_with


def _refused(api: RunningApi, body: Any, expected_status: int = 400) -> str:
    """Post ``body`` as a new organization; check the refusal stored nothing; its message."""
    _, key = api.new_key()
    answer = api.post_call(key, body)
    assert answer.status_code == expected_status, answer.text
    assert answer.json()["status"] == "error"
    if isinstance(body, dict) and isinstance(body.get("requestId"), str):
        assert api.status(key, body["requestId"]).status_code == 404  # nothing stored
    return str(answer.json()["message"])


def test_a_bad_phone_number_is_named_by_its_path(api: RunningApi):
    body = seed_with("bad-phone", destinations=5)
    body["destinations"][3]["phone"] = "+0123"
    assert _refused(api, body) == 'destinations[3].phone: "+0123" is not an E.164 number'


def test_a_bad_caller_is_named_by_its_path(api: RunningApi):
    body = seed_with("bad-caller")
    body["destinations"][1]["caller"] = "65-8267"
    assert _refused(api, body) == 'destinations[1].caller: "65-8267" is not an E.164 number'


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (lambda b: b.update(callflow={}), "callflow: unknown field"),
        (lambda b: b["destinations"][0].update(phoneNumber="+1"), "destinations[0].phoneNumber"),
        (lambda b: b["callFlow"]["steps"][0]["message"].update(voice="x"),
         "callFlow.steps[0].message.voice"),
        (lambda b: b["callFlow"]["steps"][1]["branches"][0].update(digits="1"),
         "callFlow.steps[1].branches[0].digits"),
    ],
)
def test_an_unknown_field_is_named(api: RunningApi, where: Any, expected: str):
    # given a body with one field no client should send (a typo)
    body = seed_with("unknown-field")
    where(body)
    # then the 400 names it
    assert _refused(api, body) == f"{expected.split(':')[0]}: unknown field"


def test_a_missing_placeholder_names_the_destination_and_the_key(api: RunningApi):
    body = seed_with("no-amount", destinations=3)
    del body["destinations"][2]["properties"]["amount"]
    assert _refused(api, body) == (
        'destinations[2].properties: missing "amount", which callFlow.steps[1].message.msg uses'
    )


def test_a_message_too_long_after_substitution_is_refused(api: RunningApi):
    body = seed_with("too-long")
    body["destinations"][1]["properties"]["name"] = "N" * 995  # "thanks " + 995 > 1000
    message = _refused(api, body)
    assert message.startswith("destinations[1]: callFlow.steps[0].message.msg is ")
    assert "after substitution (at most 1000)" in message


def test_a_message_over_1000_characters_is_refused(api: RunningApi):
    body = seed_with("long-msg")
    body["callFlow"]["steps"][0]["message"]["msg"] = "x" * 1001
    assert _refused(api, body).startswith("callFlow.steps[0].message.msg: ")


def test_an_unavailable_language_is_refused_listing_the_available_ones(api: RunningApi):
    body = seed_with("klingon")
    body["callFlow"]["steps"][0]["message"]["lang"] = "tlh"
    assert _refused(api, body) == (
        'callFlow.steps[0].message.lang: "tlh" is not available; available: en, vi'
    )


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("pitch", 10, "pitch"),
        ("rate", -1, "rate"),
        ("gender", "robot", "gender"),
    ],
)
def test_voice_settings_out_of_range_are_refused(api: RunningApi, field: str, value: Any,
                                                 path: str):
    body = seed_with(f"voice-{field}")
    body["callFlow"]["steps"][0]["message"][field] = value
    assert _refused(api, body).startswith(f"callFlow.steps[0].message.{path}: ")


def test_a_flow_nested_deeper_than_ten_levels_is_refused(api: RunningApi):
    # given flows 10 and 11 levels deep
    _, key = api.new_key()
    ten = seed_with("depth-10")
    ten["callFlow"] = nested_flow(10)
    eleven = seed_with("depth-11")
    eleven["callFlow"] = nested_flow(11)
    # then ten is accepted and eleven refused at the eleventh level
    assert api.post_call(key, ten).status_code == 200
    message = _refused(api, eleven)
    assert message.endswith(": call flows nest at most 10 levels deep")
    assert message.count("branches[0].callFlow") == 10


@pytest.mark.parametrize(
    ("branches", "fault"),
    [
        ([{"digit": "1", "callFlow": {"steps": [{"name": "play", "message": {"msg": "a"}}]}},
          {"digit": "1", "callFlow": {"steps": [{"name": "play", "message": {"msg": "b"}}]}}],
         'branches[1].digit: "1" is used by another branch'),
        ([{"default": "true", "callFlow": {"steps": [{"name": "play", "message": {"msg": "a"}}]}},
          {"default": True, "callFlow": {"steps": [{"name": "play", "message": {"msg": "b"}}]}}],
         "branches[1].default: a gather has at most one default"),
        ([{"default": "false", "callFlow": {"steps": [{"name": "play", "message": {"msg": "a"}}]}}],
         'branches[0]: a branch needs a "digit" or "default": "true"'),
        ([{"digit": "1a", "callFlow": {"steps": [{"name": "play", "message": {"msg": "a"}}]}}],
         'branches[0].digit: "1a" must be one or more of the keys 0-9, * and #'),
    ],
)
def test_gather_branch_rules(api: RunningApi, branches: list[Any], fault: str):
    body = seed_with("branches")
    body["callFlow"]["steps"][1]["branches"] = branches
    assert _refused(api, body) == f"callFlow.steps[1].{fault}"


@pytest.mark.parametrize("destination", ["Ext:1", "Ext:12345678901", "sip:bob@example.com", "0123"])
def test_a_transfer_destination_must_be_an_extension_or_e164(api: RunningApi, destination: str):
    body = seed_with("transfer")
    body["callFlow"]["steps"] = [{"name": "transfer", "destination": destination}]
    assert _refused(api, body) == (
        f'callFlow.steps[0].destination: "{destination}" '
        "is neither Ext:<2-10 digits> nor an E.164 number"
    )


def test_an_unknown_step_is_refused(api: RunningApi):
    body = seed_with("step")
    body["callFlow"]["steps"][0]["name"] = "dance"
    assert _refused(api, body) == (
        'callFlow.steps[0].name: "dance" is not one of play, gather, transfer'
    )


def test_a_missing_required_field_is_named(api: RunningApi):
    body = seed_with("no-flow")
    del body["callFlow"]
    assert _refused(api, body) == "callFlow: is required"


def test_more_destinations_than_configured_are_refused(start_api: Callable[..., RunningApi]):
    api = start_api(max_destinations=3)
    assert _refused(api, seed_with("four", destinations=4)) == (
        "destinations: 4 destinations; at most 3 are allowed"
    )


def test_no_destinations_is_refused(api: RunningApi):
    body = seed_with("none")
    body["destinations"] = []
    assert _refused(api, body).startswith("destinations: ")


def test_a_body_that_is_not_json_is_refused(api: RunningApi):
    _, key = api.new_key()
    answer = requests.post(api.url("/v1/call"), data=b"{not json", timeout=30,
                           headers={API_KEY_HEADER: key, "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("body: is not valid JSON")


def test_a_body_over_the_limit_is_refused_by_its_declared_length(
    start_api: Callable[..., RunningApi],
):
    # given a server that takes 2,000-byte bodies
    api = start_api(max_body_bytes=2000)
    # when a larger body is posted with its Content-Length
    assert _refused(api, seed_with("big", destinations=40), expected_status=413).startswith(
        "body: larger than 2000 bytes"
    )


def test_a_chunked_body_over_the_limit_is_refused_while_reading(
    start_api: Callable[..., RunningApi],
):
    # given a server that takes 2,000-byte bodies
    api = start_api(max_body_bytes=2000)
    _, key = api.new_key()
    payload = requests.models.complexjson.dumps(seed_with("big-chunked", destinations=40))

    def chunks():  # no Content-Length: sent chunked
        for start in range(0, len(payload), 500):
            yield payload[start:start + 500].encode()

    # when it is sent without a declared length
    answer = requests.post(api.url("/v1/call"), data=chunks(), timeout=30,
                           headers={API_KEY_HEADER: key, "Content-Type": "application/json"})
    # then the capped read refuses it
    assert answer.status_code == 413
    assert api.status(key, "big-chunked").status_code == 404


def test_a_key_over_its_rate_is_told_to_slow_down(start_api: Callable[..., RunningApi]):
    # given a server allowing 2 requests a minute per key, on a clock that does not move
    api = start_api(rate_limit_per_minute=2, monotonic=lambda: 1000.0)
    _, key = api.new_key()
    # when the key makes three requests
    answers = [api.status(key, "anything") for _ in range(3)]
    # then the third is refused with 429 and a Retry-After
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[2].json()["status"] == "error"
    assert answers[2].headers["Retry-After"] == "30"


def test_text_with_a_nul_character_is_refused_on_every_database(api: RunningApi):
    # PostgreSQL cannot store NUL in text; SQLite could, so the edge refuses it for both
    body = seed_with("nul")
    body["destinations"][1]["properties"]["name"] = "Al\x00ex"
    assert _refused(api, body) == (
        "destinations[1].properties.name: text may not contain the NUL character"
    )


def test_a_status_request_id_with_a_nul_character_is_not_found(api: RunningApi):
    _, key = api.new_key()
    assert api.status(key, "a\x00b").status_code == 404


def test_a_flow_nested_fifty_levels_is_refused_at_the_documented_depth(api: RunningApi):
    # given a callFlow nested 60 levels deep (deep enough to break any recursion through it)
    body = seed_with("depth-60")
    body["callFlow"] = nested_flow(60)
    # then it is a 400 at the eleventh level, not a server error
    message = _refused(api, body)
    assert message.endswith(": call flows nest at most 10 levels deep")
    assert message.count("branches[0].callFlow") == 10


@pytest.mark.parametrize("name", [{}, [], 7, None])
def test_a_step_name_that_is_not_text_is_a_400_naming_it(api: RunningApi, name: Any):
    body = seed_with(f"name-{type(name).__name__}")
    body["callFlow"]["steps"][0]["name"] = name
    message = _refused(api, body)
    assert message.startswith("callFlow.steps[0].name: ")


@pytest.mark.parametrize("text", [" ", "   \n\t ", "\u00a0\u2003"])
def test_a_message_of_whitespace_only_is_refused(api: RunningApi, text: str):
    body = seed_with("blank-msg")
    body["callFlow"]["steps"][0]["message"]["msg"] = text
    assert _refused(api, body).startswith("callFlow.steps[0].message.msg: ")


def test_a_message_that_is_only_whitespace_once_filled_is_refused(api: RunningApi):
    body = seed_with("blank-filled")
    body["callFlow"]["steps"][0]["message"]["msg"] = " {{name}} "
    body["destinations"][1]["properties"]["name"] = "  "
    assert _refused(api, body) == (
        "destinations[1]: callFlow.steps[0].message.msg is only whitespace after substitution: "
        "the callee would hear nothing"
    )


def test_language_is_accepted_as_lang_is_and_both_must_agree(api: RunningApi):
    # given the contract's parameter table's name, and both names at once
    _, key = api.new_key()
    table = seed_with("language-1")
    table["callFlow"]["steps"][0]["message"] = {"msg": "hi", "language": "vi"}
    agreeing = seed_with("language-2")
    agreeing["callFlow"]["steps"][0]["message"] = {"msg": "hi", "lang": "vi", "language": "vi"}
    differing = seed_with("language-3")
    differing["callFlow"]["steps"][0]["message"] = {"msg": "hi", "lang": "en", "language": "vi"}
    unknown = seed_with("language-4")
    unknown["callFlow"]["steps"][0]["message"] = {"msg": "hi", "language": "xx"}
    # then language alone and both agreeing are accepted; disagreeing and unknown are 400s
    assert api.post_call(key, table).status_code == 200
    assert api.post_call(key, agreeing).status_code == 200
    assert _refused(api, differing) == (
        'callFlow.steps[0].message.language: "vi" differs from lang "en"'
    )
    assert _refused(api, unknown).startswith(
        'callFlow.steps[0].message.language: "xx" is not available'
    )


@pytest.mark.parametrize("request_id", ["a/b", "a b", "..", ".hidden", "a?b", "a#b", "ü"])
def test_a_request_id_a_url_cannot_carry_is_refused(api: RunningApi, request_id: str):
    # given a requestId that could not be read or cancelled afterwards by its path
    body = seed_with(request_id)
    _, key = api.new_key()
    answer = api.post_call(key, body)
    # then it is refused, naming requestId, and nothing is stored
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("requestId: ")
    assert api.repo.find_request(_org_of(api, key), request_id) is None


def _org_of(api: RunningApi, key: str) -> str:
    organization = api.repo.organization_for_key(key)
    assert organization is not None
    return organization.id


def test_a_property_value_longer_than_a_message_is_refused(api: RunningApi):
    body = seed_with("long-value")
    body["destinations"][1]["properties"]["name"] = "x" * 1001
    assert _refused(api, body).startswith("destinations[1].properties.name: ")


def test_too_many_properties_for_one_destination_are_refused(api: RunningApi):
    body = seed_with("many-properties")
    body["destinations"][0]["properties"] = {f"p{index}": "v" for index in range(51)}
    assert _refused(api, body).startswith("destinations[0].properties: ")


def test_too_many_characters_of_properties_for_one_destination_are_refused(api: RunningApi):
    body = seed_with("big-destination")
    body["destinations"][1]["properties"] |= {f"p{index}": "v" * 1000 for index in range(5)}
    assert _refused(api, body) == (
        "destinations[1].properties: 5029 characters of values; at most 4000 per destination"
    )


def test_a_property_of_50_megabytes_is_refused_without_being_echoed(api: RunningApi):
    body = seed_with("huge")
    body["destinations"][0]["properties"]["name"] = "x" * (50 * 1024 * 1024)
    assert _refused(api, body) == (
        "destinations[0].properties.name: is longer than 1000 characters"
    )


def test_a_property_named_self_is_filled_in_like_any_other(api: RunningApi):
    # given a message using {{self}} and destinations that have it
    _, key = api.new_key()
    body = seed_with("self-property")
    body["callFlow"]["steps"][0]["message"]["msg"] = "thanks {{self}}"
    for destination in body["destinations"]:
        destination["properties"]["self"] = "Alex"
    # then the request is accepted (the message renders to the property; see test_templates)
    assert api.post_call(key, body).status_code == 200


@pytest.mark.parametrize("moment", ["0", "2026-01-01", "2026-13-01T00:00:00Z",
                                    "2026-01-01T00:00:00"])
def test_a_window_moment_without_date_time_and_offset_is_refused(api: RunningApi, moment: str):
    body = seed_with("window-moment")
    body["window"] = {"notBefore": moment}
    assert _refused(api, body).startswith("window.notBefore: ")

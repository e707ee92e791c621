"""The contract document (``openapi.json``) and request validation drawn from it.

One source: the OpenAPI document beside this module is what ``/v1/openapi.json`` serves and
what request bodies are validated against (with jsonschema-rs, which checks a 100,000
destination body in tens of milliseconds). A failure becomes an :class:`InputError` whose path
and wording a person can act on: ``destinations[3].phone: "+0123" is not an E.164 number``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import jsonschema_rs

from robocall.errors import InputError
from robocall.flow.parse import MAX_FLOW_DEPTH

MAX_MESSAGE_ECHO = 200  # characters of a refused value an error message repeats
_STEP_SCHEMAS = {"play": 0, "gather": 1, "transfer": 2}  # order of Step.oneOf in the document
_FIELD_FAULTS = {
    "phone": "is not an E.164 number",
    "caller": "is not an E.164 number",
    "destination": "is neither Ext:<2-10 digits> nor an E.164 number",
    "digit": "must be one or more of the keys 0-9, * and #",
    "notBefore": "is not an ISO-8601 date and time with a UTC offset (Z or +08:00)",
    "notAfter": "is not an ISO-8601 date and time with a UTC offset (Z or +08:00)",
    "requestId": "may hold only letters, digits and . _ ~ : @ - (not first: a dot)",
    "msg": "is only whitespace: the callee would hear nothing",
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 document of the contract (parsed once)."""
    text = resources.files("robocall.api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@functools.cache
def _validator(component: str) -> Any:
    # "#/components/schemas/..." references resolve inside this root, as in the document
    components = openapi_document()["components"]
    root = {"$ref": f"#/components/schemas/{component}", "components": components}
    return jsonschema_rs.validator_for(root)


def validate_call_request(body: Any, raw: bytes = b"") -> None:
    """Raise InputError naming the first fault if ``body`` breaks the CallRequest schema.

    A callFlow nested deeper than the documented ``MAX_FLOW_DEPTH`` is refused first, by a
    walk that does not recurse: schema validation and hashing both recurse through the body.
    """
    check_flow_depth(body)
    validate_body("CallRequest", body, raw)


def check_flow_depth(body: Any) -> None:
    """InputError at the first callFlow nested more than ``MAX_FLOW_DEPTH`` levels deep."""
    if not isinstance(body, dict) or not isinstance(body.get("callFlow"), dict):
        return
    pending: list[tuple[dict[str, Any], str, int]] = [(body["callFlow"], "callFlow", 1)]
    while pending:
        flow, path, depth = pending.pop()
        if depth > MAX_FLOW_DEPTH:
            raise InputError(path, f"call flows nest at most {MAX_FLOW_DEPTH} levels deep")
        steps = flow.get("steps")
        for index, step in enumerate(steps if isinstance(steps, list) else ()):
            branches = step.get("branches") if isinstance(step, dict) else None
            for number, branch in enumerate(branches if isinstance(branches, list) else ()):
                inner = branch.get("callFlow") if isinstance(branch, dict) else None
                if isinstance(inner, dict):
                    where = f"{path}.steps[{index}].branches[{number}].callFlow"
                    pending.append((inner, where, depth + 1))


def validate_body(component: str, body: Any, raw: bytes = b"") -> None:
    """Raise InputError naming the first fault if ``body`` breaks the schema ``component``.

    ``raw`` is the body's JSON text, to look for NUL characters cheaply: PostgreSQL cannot
    store them in text, so they are refused on every database alike.
    """
    if b"\\u0000" in raw:  # rare: only then walk the body to name where
        path = _nul_path(body, [])
        if path is not None:
            raise InputError(format_path(path), "text may not contain the NUL character")
    validator = _validator(component)
    if validator.is_valid(body):
        return
    found = list(validator.iter_errors(body))
    # an unknown field is most often a typo ("callflow") that also explains the rest
    unknown_field = jsonschema_rs.ValidationErrorKind.AdditionalProperties
    unknown = [error for error in found if isinstance(error.kind, unknown_field)]
    raise _input_error((unknown or found)[0])


def _input_error(error: Any) -> InputError:
    kind = error.kind
    details = kind.as_dict()
    path = list(error.instance_path)
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.OneOfNotValid):
        return _step_error(error.instance, path, details["context"])
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        return InputError(format_path([*path, details["unexpected"][0]]), "unknown field")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return InputError(format_path([*path, details["property"]]), "is required")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern) and path:
        fault = _FIELD_FAULTS.get(str(path[-1]), "has the wrong form")
        return InputError(format_path(path), f"{_excerpt(error.instance)} {fault}")
    # sizes are said without echoing the value: it may be megabytes
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.MaxLength):
        return InputError(format_path(path), f"is longer than {details['limit']} characters")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.MaxProperties):
        return InputError(format_path(path), f"has more than {details['limit']} properties")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.MaxItems):
        return InputError(format_path(path), f"has more than {details['limit']} items")
    message = error.message
    if len(message) > MAX_MESSAGE_ECHO:
        message = f"{message[:MAX_MESSAGE_ECHO]}..."
    return InputError(format_path(path), message)


def _excerpt(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= MAX_MESSAGE_ECHO else f"{text[:MAX_MESSAGE_ECHO]}..."


def _step_error(instance: Any, path: list[str | int], context: Sequence[Any]) -> InputError:
    """A step matched none of play/gather/transfer: report the fault of the one it names."""
    if not isinstance(instance, dict):
        return InputError(format_path(path), "a step must be an object")
    name = instance.get("name")
    if name is None:
        return InputError(format_path([*path, "name"]), "is required")
    if not isinstance(name, str) or name not in _STEP_SCHEMAS:
        return InputError(
            format_path([*path, "name"]),
            f"{_excerpt(name)} is not one of play, gather, transfer",
        )
    return _input_error(context[_STEP_SCHEMAS[name]][0])


def _nul_path(value: Any, path: list[str | int]) -> list[str | int] | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return [*path, key.replace("\x00", "\\u0000")]
            found = _nul_path(item, [*path, key])
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, [*path, index])
            if found is not None:
                return found
    return None


def format_path(parts: Sequence[str | int]) -> str:
    """``["destinations", 3, "phone"]`` -> ``destinations[3].phone`` (``body`` for the root)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"

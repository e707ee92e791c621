"""A ``POST /v1/call`` body (already checked against the OpenAPI schema) -> ``CallRequest``.

The schema checks shapes, types and ranges; this module checks meaning, each fault raised as
:class:`~robocall.errors.InputError` carrying the JSON path: nesting depth, the number of
destinations, languages the TTS engines speak, gather/branch rules, placeholders every
destination can fill, and message length after substitution. It is pure: the available
languages and the limits are arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from robocall.errors import InputError
from robocall.flow.model import (
    DEFAULT_LANG,
    DEFAULT_MAX_RETRIES,
    NATURAL_PITCH,
    NATURAL_RATE,
    Branch,
    CallFlow,
    CallRequest,
    Destination,
    Gather,
    Gender,
    Message,
    Play,
    Step,
    Transfer,
    TransferKind,
)
from robocall.flow.templates import MessageTemplate, compile_template

_new_destination = object.__new__
MAX_FLOW_DEPTH = 10
PAUSE_EVERY = 10_000  # destinations between two calls of ``pause``


def _no_pause() -> None:
    return None


MAX_MESSAGE_CHARS = 1000
EXTENSION_PREFIX = "Ext:"


def parse_call_request(
    body: Mapping[str, Any],
    *,
    languages: Iterable[str],
    max_destinations: int,
    pause: Callable[[], None] = _no_pause,
) -> CallRequest:
    """Check a schema-valid request body's meaning and return it as a ``CallRequest``.

    ``pause`` is called after every ``PAUSE_EVERY`` destinations: the caller's chance to let
    others run (the API passes a yield to the gevent hub) without this module doing I/O.
    """
    raw_destinations: Sequence[Mapping[str, Any]] = body["destinations"]
    if len(raw_destinations) > max_destinations:
        raise InputError(
            "destinations",
            f"{len(raw_destinations)} destinations; at most {max_destinations} are allowed",
        )
    templates: list[tuple[str, MessageTemplate]] = []
    call_flow = _parse_flow(body["callFlow"], "callFlow", 1, frozenset(languages), templates)
    destinations: list[Destination] = []
    for start in range(0, len(raw_destinations), PAUSE_EVERY):
        destinations += map(_destination, raw_destinations[start:start + PAUSE_EVERY])
        pause()
    check_placeholders(destinations, templates, pause=pause)
    return CallRequest(
        request_id=body["requestId"],
        destinations=tuple(destinations),
        call_flow=call_flow,
        enable_call_recording=bool(body.get("enableCallRecording", False)),
        callback_url=parse_callback_url(body.get("callbackUrl")),
    )


MAX_CALLBACK_URL_CHARS = 2000


def parse_callback_url(raw: Any, path: str = "callbackUrl") -> str | None:
    """A request's ``callbackUrl`` checked: an absolute http(s) URL with a host, at most
    ``MAX_CALLBACK_URL_CHARS`` long, no spaces or control characters; None if absent."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InputError(path, "must be a URL (text)")
    if len(raw) > MAX_CALLBACK_URL_CHARS:
        raise InputError(path, f"is longer than {MAX_CALLBACK_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise InputError(path, "may not contain spaces or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as err:
        raise InputError(path, f"is not a valid URL ({err})") from err
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(path, "must be an http:// or https:// URL")
    if not parts.hostname:
        raise InputError(path, "has no host")
    if port == 0:
        raise InputError(path, "port 0 cannot be reached")
    if parts.fragment:
        raise InputError(path, "may not have a #fragment (it is never sent)")
    return raw


def parse_call_flow(raw: Mapping[str, Any], *, languages: Iterable[str]) -> CallFlow:
    """Rebuild a stored (already accepted) ``callFlow`` JSON value as a ``CallFlow``."""
    return _parse_flow(raw, "callFlow", 1, frozenset(languages), [])


def check_placeholders(
    destinations: Sequence[Destination],
    templates: Sequence[tuple[str, MessageTemplate]],
    *,
    pause: Callable[[], None] = _no_pause,
) -> None:
    """Every destination fills every placeholder, and no filled message exceeds the limit."""
    with_names = [(path, template) for path, template in templates if template.names]
    if not with_names:
        return
    needed = frozenset().union(*(template.required for _, template in with_names))
    # a message is at most its literal text plus each of its placeholders filled with all of
    # the destination's values: under the limit by that bound, no per-message sum is needed
    longest_literal = max(template.literal_length for _, template in with_names)
    repeats = max(
        max(template.names.count(name) for name in template.names) for _, template in with_names
    )
    for index, destination in enumerate(destinations):
        if index % PAUSE_EVERY == PAUSE_EVERY - 1:
            pause()
        properties = destination.properties
        if not needed <= properties.keys():
            _raise_missing(index, properties, with_names)
        if longest_literal + repeats * sum(map(len, properties.values())) <= MAX_MESSAGE_CHARS:
            continue
        for path, template in with_names:
            length = template.rendered_length(properties)
            if length > MAX_MESSAGE_CHARS:
                raise InputError(
                    f"destinations[{index}]",
                    f"{path} is {length} characters after substitution "
                    f"(at most {MAX_MESSAGE_CHARS})",
                )


def _raise_missing(
    index: int, properties: Mapping[str, str], templates: Sequence[tuple[str, MessageTemplate]]
) -> None:
    for path, template in templates:
        missing = template.missing(properties)
        if missing:
            raise InputError(
                f"destinations[{index}].properties", f'missing "{missing[0]}", which {path} uses'
            )


def _destination(raw: Mapping[str, Any]) -> Destination:
    properties = raw.get("properties") or {}
    if not set(map(type, properties.values())) <= {str}:
        # numbers are accepted and kept as text (DESIGN "Contract decisions")
        properties = {
            key: value if isinstance(value, str) else _number_text(value)
            for key, value in properties.items()
        }
    # Destination is a frozen dataclass: its __init__ sets each field through
    # object.__setattr__, ~1.7 us a call, a sixth of the ingest budget for 100,000 numbers.
    # It has no __post_init__ or checks to skip, so filling the instance dict is the same value.
    destination = _new_destination(Destination)
    destination.__dict__.update(phone=raw["phone"], caller=raw["caller"], properties=properties)
    return destination


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_flow(
    raw: Mapping[str, Any],
    path: str,
    depth: int,
    languages: frozenset[str],
    templates: list[tuple[str, MessageTemplate]],
) -> CallFlow:
    if depth > MAX_FLOW_DEPTH:
        raise InputError(path, f"call flows nest at most {MAX_FLOW_DEPTH} levels deep")
    steps: list[Step] = []
    for index, raw_step in enumerate(raw["steps"]):
        steps.append(_step(raw_step, f"{path}.steps[{index}]", depth, languages, templates))
    return CallFlow(steps=tuple(steps))


def _step(
    raw: Mapping[str, Any],
    path: str,
    depth: int,
    languages: frozenset[str],
    templates: list[tuple[str, MessageTemplate]],
) -> Step:
    name = raw["name"]
    if name == "play":
        return Play(message=_message(raw["message"], f"{path}.message", languages, templates))
    if name == "gather":
        message = _message(raw["message"], f"{path}.message", languages, templates)
        branches = _branches(raw["branches"], f"{path}.branches", depth, languages, templates)
        return Gather(
            message=message,
            branches=branches,
            max_retries=raw.get("maxRetries", DEFAULT_MAX_RETRIES),
        )
    if name == "transfer":
        return _transfer(raw["destination"], f"{path}.destination")
    raise InputError(f"{path}.name", f'"{name}" is not one of play, gather, transfer')


def _message(
    raw: Mapping[str, Any],
    path: str,
    languages: frozenset[str],
    templates: list[tuple[str, MessageTemplate]],
) -> Message:
    text = raw["msg"]
    if not 1 <= len(text) <= MAX_MESSAGE_CHARS:
        raise InputError(f"{path}.msg", f"must be 1 to {MAX_MESSAGE_CHARS} characters")
    try:
        template = compile_template(text)
    except InputError as err:
        raise InputError(f"{path}.msg", err.problem) from err
    templates.append((f"{path}.msg", template))
    lang = raw.get("lang", DEFAULT_LANG)
    if lang not in languages:
        available = ", ".join(sorted(languages)) or "none (no TTS engine is installed)"
        raise InputError(f"{path}.lang", f'"{lang}" is not available; available: {available}')
    gender = raw.get("gender")
    return Message(
        text=text,
        lang=lang,
        gender=Gender(gender) if gender is not None else None,
        pitch=raw.get("pitch", NATURAL_PITCH),
        rate=raw.get("rate", NATURAL_RATE),
    )


def _branches(
    raw: Sequence[Mapping[str, Any]],
    path: str,
    depth: int,
    languages: frozenset[str],
    templates: list[tuple[str, MessageTemplate]],
) -> tuple[Branch, ...]:
    branches: list[Branch] = []
    seen_digits: set[str] = set()
    default_seen = False
    for index, raw_branch in enumerate(raw):
        branch_path = f"{path}[{index}]"
        digits = raw_branch.get("digit")
        is_default = raw_branch.get("default", False) in (True, "true")
        if digits is None and not is_default:
            raise InputError(branch_path, 'a branch needs a "digit" or "default": "true"')
        if digits is not None:
            if digits in seen_digits:
                raise InputError(f"{branch_path}.digit", f'"{digits}" is used by another branch')
            seen_digits.add(digits)
        if is_default:
            if default_seen:
                raise InputError(f"{branch_path}.default", "a gather has at most one default")
            default_seen = True
        flow = _parse_flow(
            raw_branch["callFlow"], f"{branch_path}.callFlow", depth + 1, languages, templates
        )
        branches.append(Branch(digits=digits, is_default=is_default, flow=flow))
    return tuple(branches)


def _transfer(destination: str, path: str) -> Transfer:
    if destination.startswith(EXTENSION_PREFIX):
        extension = destination[len(EXTENSION_PREFIX):]
        if extension.isascii() and extension.isdigit() and 2 <= len(extension) <= 10:
            return Transfer(kind=TransferKind.EXTENSION, target=extension)
    elif _is_e164(destination):
        return Transfer(kind=TransferKind.NUMBER, target=destination)
    raise InputError(path, f'"{destination}" is neither Ext:<2-10 digits> nor an E.164 number')


def _is_e164(value: str) -> bool:
    digits = value[1:] if value.startswith("+") else value
    return (
        digits.isascii() and digits.isdigit() and 2 <= len(digits) <= 15 and digits[0] != "0"
    )

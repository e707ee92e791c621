"""A ``POST /v1/call`` body (already checked against the OpenAPI schema) -> ``CallRequest``.

The schema checks shapes, types and ranges; this module checks meaning, each fault raised as
:class:`~robocall.errors.InputError` carrying the JSON path: nesting depth, the number of
destinations, languages the TTS engines speak, gather/branch rules, placeholders every
destination can fill, and message length after substitution. It is pure: the available
languages and the limits are arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, time
from typing import Any
from urllib.parse import urlsplit

from robocall.errors import InputError, UnsafeValue
from robocall.esl.commands import channel_variables
from robocall.flow.model import (
    DEFAULT_LANG,
    DEFAULT_MAX_RETRIES,
    DESTINATION_TIME_ZONE,
    NATURAL_PITCH,
    NATURAL_RATE,
    Branch,
    CallFlow,
    CallingWindow,
    CallRequest,
    DailyWindow,
    Destination,
    DetectionMode,
    Gather,
    Gender,
    LinesChange,
    MachineDetection,
    Message,
    Play,
    RetryOutcome,
    RetryPolicy,
    Step,
    Transfer,
    TransferKind,
)
from robocall.flow.schedule import is_time_zone, zones_for_number
from robocall.flow.templates import MessageTemplate, compile_template

_new_destination = object.__new__
MAX_FLOW_DEPTH = 10
PAUSE_EVERY = 10_000  # destinations between two calls of ``pause``


def _no_pause() -> None:
    return None


MAX_MESSAGE_CHARS = 1000
# A destination's property values together (each is at most MAX_MESSAGE_CHARS, by the schema):
# room for every placeholder of a long message, not for storing documents per call.
MAX_PROPERTIES_CHARS = 4000
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
    machine_detection = (
        parse_machine_detection(body["machineDetection"], frozenset(languages), templates)
        if "machineDetection" in body
        else None
    )
    destinations: list[Destination] = []
    for start in range(0, len(raw_destinations), PAUSE_EVERY):
        destinations += map(_destination, raw_destinations[start:start + PAUSE_EVERY])
        pause()
    check_placeholders(destinations, templates, pause=pause)
    window = parse_window(body["window"]) if "window" in body else None
    if window and window.daily and window.daily.time_zone == DESTINATION_TIME_ZONE:
        _check_destination_zones(destinations, pause)
    return CallRequest(
        request_id=body["requestId"],
        destinations=tuple(destinations),
        call_flow=call_flow,
        enable_call_recording=bool(body.get("enableCallRecording", False)),
        callback_url=parse_callback_url(body.get("callbackUrl")),
        retry=parse_retry(body["retry"]) if "retry" in body else None,
        window=window,
        machine_detection=machine_detection,
    )


def parse_machine_detection(
    raw: Mapping[str, Any],
    languages: frozenset[str],
    templates: list[tuple[str, MessageTemplate]] | None = None,
    path: str = "machineDetection",
) -> MachineDetection:
    """A schema-valid ``machineDetection`` (mode ``message`` needs its message, checked as any
    message is: placeholders, length, language). Also rebuilds a stored one."""
    mode = DetectionMode(raw["mode"])
    message = None
    if "message" in raw:
        message = _message(raw["message"], f"{path}.message", languages,
                           templates if templates is not None else [])
    elif mode is DetectionMode.MESSAGE:
        raise InputError(f"{path}.message", 'is required when mode is "message"')
    return MachineDetection(mode, message)


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
    """Every destination's properties stay within ``MAX_PROPERTIES_CHARS``, fill every
    placeholder, and leave no filled message too long or only whitespace."""
    with_names = [(path, template) for path, template in templates if template.names]
    if not with_names:
        _check_property_sizes(destinations, pause)
        return
    blank = [(path, template) for path, template in with_names if template.blank_literal]
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
        size = sum(map(len, properties.values()))
        if size > MAX_PROPERTIES_CHARS:
            _raise_too_large(index, size)
        for path, template in blank:
            if not template.render(properties).strip():
                raise InputError(
                    f"destinations[{index}]",
                    f"{path} is only whitespace after substitution: the callee would hear "
                    "nothing",
                )
        if longest_literal + repeats * size <= MAX_MESSAGE_CHARS:
            continue
        for path, template in with_names:
            length = template.rendered_length(properties)
            if length > MAX_MESSAGE_CHARS:
                raise InputError(
                    f"destinations[{index}]",
                    f"{path} is {length} characters after substitution "
                    f"(at most {MAX_MESSAGE_CHARS})",
                )


def _check_property_sizes(
    destinations: Sequence[Destination], pause: Callable[[], None]
) -> None:
    for index, destination in enumerate(destinations):
        if index % PAUSE_EVERY == PAUSE_EVERY - 1:
            pause()
        size = sum(map(len, destination.properties.values()))
        if size > MAX_PROPERTIES_CHARS:
            _raise_too_large(index, size)


def _raise_too_large(index: int, size: int) -> None:
    raise InputError(
        f"destinations[{index}].properties",
        f"{size} characters of values; at most {MAX_PROPERTIES_CHARS} per destination",
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
        # numbers are accepted and kept as text (docs/design.md, "Contract decisions")
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
    if not text.strip():
        raise InputError(f"{path}.msg", "is only whitespace: the callee would hear nothing")
    try:
        template = compile_template(text)
    except InputError as err:
        raise InputError(f"{path}.msg", err.problem) from err
    templates.append((f"{path}.msg", template))
    # "lang" in the contract's example, "language" in its parameter table: either, or both
    # when they agree
    lang_field = "lang" if "lang" in raw or "language" not in raw else "language"
    lang = raw.get("lang", raw.get("language", DEFAULT_LANG))
    if "language" in raw and raw["language"] != lang:
        raise InputError(f"{path}.language", f'"{raw["language"]}" differs from lang "{lang}"')
    if lang not in languages:
        available = ", ".join(sorted(languages)) or "none (no TTS engine is installed)"
        raise InputError(
            f"{path}.{lang_field}", f'"{lang}" is not available; available: {available}'
        )
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


# --- extensions: retry policy, calling window, lines -----------------------------------------

DEFAULT_BACKOFF_SECONDS = 60


def parse_retry(raw: Mapping[str, Any], path: str = "retry") -> RetryPolicy:
    """A schema-valid ``retry`` object as a ``RetryPolicy`` (also rebuilds a stored one)."""
    # machines are retried only when asked for: a request without machineDetection has none
    unasked = {RetryOutcome.MACHINE.value}
    outcomes = raw.get("on", [o.value for o in RetryOutcome if o.value not in unasked])
    return RetryPolicy(
        max_attempts=raw["maxAttempts"],
        on=frozenset(RetryOutcome(outcome) for outcome in outcomes),
        backoff_seconds=raw.get("backoffSeconds", DEFAULT_BACKOFF_SECONDS),
    )


def parse_window(raw: Mapping[str, Any], path: str = "window") -> CallingWindow:
    """A schema-valid ``window`` object as a ``CallingWindow``; InputError naming the field
    for a moment without a UTC offset, an end not after the start, an unknown time zone."""
    not_before = _moment(raw.get("notBefore"), f"{path}.notBefore")
    not_after = _moment(raw.get("notAfter"), f"{path}.notAfter")
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise InputError(f"{path}.notAfter", "must be later than notBefore")
    daily = _daily(raw["daily"], f"{path}.daily") if "daily" in raw else None
    return CallingWindow(not_before=not_before, not_after=not_after, daily=daily)


def parse_lines_change(raw: Mapping[str, Any]) -> LinesChange:
    """A schema-valid lines change (``PUT /v1/organizations/{orgId}/lines``) as a
    ``LinesChange`` (at least one field)."""
    if not {"maxConcurrentCalls", "cps", "lineRule"} & set(raw):
        raise InputError("body", "give maxConcurrentCalls, cps, lineRule or more than one")
    cps = raw.get("cps")
    rule = raw.get("lineRule")
    return LinesChange(
        max_concurrent_calls=raw.get("maxConcurrentCalls"),
        cps=float(cps) if cps is not None else None,
        line_rule=parse_line_rule(rule, "lineRule") if rule is not None else None,
    )


def parse_line_rule(raw: Mapping[str, Any], path: str) -> tuple[str, str]:
    """``{"variable": "accountcode", "value": "org_x"}`` -> ``("accountcode", "org_x")``: the
    channel variable that marks a channel as one of the organization's lines. Both go into
    every originate of the organization, so they are held to the dial command's own check."""
    variable, value = raw.get("variable"), raw.get("value")
    if not isinstance(variable, str) or not variable:
        raise InputError(f"{path}.variable", "must be a channel variable name")
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}.value", "must be the value that marks the lines")
    try:
        channel_variables([(variable, value)])
    except UnsafeValue as err:
        raise InputError(path, str(err)) from err
    return variable, value


def _moment(text: str | None, path: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise InputError(path, f"{text!r} is not an ISO-8601 date and time") from err
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(path, f"{text!r} needs a UTC offset (Z or +08:00)")
    return moment


def _daily(raw: Mapping[str, Any], path: str) -> DailyWindow:
    start, end = _clock_time(raw["from"], f"{path}.from"), _clock_time(raw["to"], f"{path}.to")
    if start == end:
        raise InputError(f"{path}.to", "must differ from from (the window would be empty)")
    zone = raw.get("timeZone", DESTINATION_TIME_ZONE)
    if zone != DESTINATION_TIME_ZONE and not is_time_zone(zone):
        raise InputError(
            f"{path}.timeZone", f'"{zone}" is neither an IANA time zone nor "destination"'
        )
    return DailyWindow(start=start, end=end, time_zone=zone)


def _clock_time(text: str, path: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError as err:
        raise InputError(path, f"{text!r} is not a time of day (HH:MM)") from err


def _check_destination_zones(destinations: Sequence[Destination], pause: Callable[[], None]
                             ) -> None:
    for index, destination in enumerate(destinations):
        if index % PAUSE_EVERY == PAUSE_EVERY - 1:
            pause()
        if not zones_for_number(destination.phone):
            raise InputError(
                f"destinations[{index}].phone",
                f'no time zone is known for {destination.phone}; give window.daily.timeZone',
            )

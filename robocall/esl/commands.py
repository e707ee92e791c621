"""Pure builders of every Event Socket command robocall sends.

Each function returns the exact text that goes on the wire (or the text of an ``api``/``bgapi``
command, which :func:`api` and :func:`bgapi` then frame). The builders own the checking: a value
that could break out of its place in a command — a newline that starts a new header, ``,``/``{``/
``}`` that end a channel-variable list, ``${`` that FreeSWITCH expands, ``'`` that ends a quoted
argument, a space where FreeSWITCH splits arguments — raises :class:`robocall.errors.UnsafeValue`
instead of being sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote

from robocall.errors import UnsafeValue

# Every event robocall needs, and no other: each is ~5 KB of JSON for every channel on the
# switch, parsed by robocall. CHANNEL_PARK is where a call's flow starts (a sendmsg landing
# between CHANNEL_ANSWER and park() is aborted: docs/design.md), so CHANNEL_EXECUTE is not needed;
# a played prompt is judged by its CHANNEL_EXECUTE_COMPLETE, digits by the variable
# play_and_get_digits sets, so neither PLAYBACK_*, RECORD_* nor DTMF are. A line is held from
# CHANNEL_CREATE to CHANNEL_HANGUP_COMPLETE (CHANNEL_DESTROY only follows it). HEARTBEAT carries
# the switch's idle CPU and session count (robocall.dispatch.health).
ROBOCALL_EVENTS: Final = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_PARK",
    "CHANNEL_BRIDGE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE_COMPLETE",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    # fired first when a switch goes down (before it unloads its endpoints): in a pool, no
    # new call goes there from then on
    "SHUTDOWN",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_CAUSE = re.compile(r"[A-Z][A-Z_]{0,63}")
_EVENT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_DIGITS = re.compile(r"[0-9*#]{1,16}")
# Characters that end or re-open a {var=value,...} list, quote an argument, or split one.
_VARIABLE_BREAKERS = (",", "{", "}", "[", "]", "'", '"', " ", "^", "|", "\\")


def _refuse(what: str, value: str, reason: str) -> UnsafeValue:
    return UnsafeValue(f"{what} {value[:60]!r}: {reason}")


def check_line(value: str, what: str) -> str:
    """Refuse what would break a single command or header line: control characters and ``${``."""
    if not value:
        raise _refuse(what, value, "is empty")
    if _CONTROL.search(value):
        raise _refuse(what, value, "holds a newline or control character")
    if "${" in value:
        raise _refuse(what, value, "holds '${' (FreeSWITCH would expand it)")
    return value


def check_word(value: str, what: str) -> str:
    """Refuse what could not be one argument of a space-separated command or a variable value."""
    check_line(value, what)
    for breaker in _VARIABLE_BREAKERS:
        if breaker in value:
            raise _refuse(what, value, f"holds {breaker!r}")
    return value


def check_uuid(value: str, what: str = "uuid") -> str:
    """Refuse anything but a FreeSWITCH-style id (letters, digits, dashes)."""
    if not _UUID.fullmatch(value):
        raise _refuse(what, value, "is not a uuid")
    return value


def _check_pattern(pattern: re.Pattern[str], value: str, what: str, expected: str) -> str:
    if not pattern.fullmatch(value):
        raise _refuse(what, value, f"is not {expected}")
    return value


# --- framing ---------------------------------------------------------------------------------


def auth(password: str) -> str:
    """``auth <password>``: the answer to FreeSWITCH's auth/request."""
    return f"auth {check_word(password, 'password')}\n\n"


def event_json(events: Iterable[str] = ROBOCALL_EVENTS) -> str:
    """Subscribe to events in JSON format."""
    names = [_check_pattern(_EVENT_NAME, name, "event name", "an event name") for name in events]
    if not names:
        raise UnsafeValue("an event subscription needs at least one event name")
    return f"event json {' '.join(names)}\n\n"


def event_filter(header: str, value: str) -> str:
    """``filter <header> <value>``: from now on the connection gets only the events some
    filter lets through (FreeSWITCH 1.11.1, mod_event_socket; see :func:`filter_value`)."""
    return f"filter {_check_header(header)} {check_line(value, 'filter value')}\n\n"


def event_filter_delete(header: str, value: str) -> str:
    """``filter delete <header> <value>``: drop one filter added by :func:`event_filter`."""
    return f"filter delete {_check_header(header)} {check_line(value, 'filter value')}\n\n"


def filter_value(value: str) -> str:
    """A filter value that matches ``value`` itself, or :data:`ANY_VALUE` when FreeSWITCH would
    read it as something else: a leading ``+``, ``-`` or space is taken as the filter's sign,
    a leading ``/`` makes it a regular expression. (The comparison is case-insensitive: a
    filter lets through a superset of what robocall then matches exactly.)"""
    if not value or value[0] in "+- /" or _CONTROL.search(value):
        return ANY_VALUE
    return value


# A regular expression (FreeSWITCH's ``/.../``, unanchored) any non-empty value matches.
ANY_VALUE: Final = "/./"
_HEADER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def _check_header(header: str) -> str:
    return _check_pattern(_HEADER, header, "event header", "an event header name")


def api(command: str) -> str:
    """``api <command>``: run a command; FreeSWITCH blocks this connection until it answers."""
    return f"api {check_line(command, 'api command')}\n\n"


def bgapi(command: str, job_uuid: str) -> str:
    """``bgapi <command>`` with the Job-UUID robocall chose, echoed in its BACKGROUND_JOB."""
    return (
        f"bgapi {check_line(command, 'bgapi command')}\n"
        f"Job-UUID: {check_uuid(job_uuid, 'Job-UUID')}\n\n"
    )


def exit_command() -> str:
    """``exit``: FreeSWITCH answers +OK bye, a disconnect-notice, then closes."""
    return "exit\n\n"


# --- channel commands --------------------------------------------------------------------------


def originate(
    *,
    uuid: str,
    dial_string: str,
    caller_id_number: str,
    timeout_seconds: int,
    line_variable: tuple[str, str] | None = None,
    call_id: str,
    request_id: str,
    extra_variables: Iterable[tuple[str, str]] = (),
    api_on_answer: str | None = None,
) -> str:
    """The ``originate`` command text (send it with :func:`bgapi`): dial, then ``&park()``.

    ``line_variable`` marks the channel as one of the organization's lines, e.g.
    ``("accountcode", "org-x")``; the robocall_* variables let a PBX admin (and a restarted
    robocall) tell which request and call the channel belongs to. ``api_on_answer`` is an api
    command (built by a builder here) that FreeSWITCH itself runs the instant the leg answers,
    with no round trip to robocall: see :func:`api_on_answer_variable`.
    """
    if not 1 <= timeout_seconds <= 3600:
        raise UnsafeValue(f"originate timeout {timeout_seconds!r} is outside 1..3600 seconds")
    variables: list[tuple[str, str]] = [
        ("origination_uuid", check_uuid(uuid, "origination_uuid")),
        ("origination_caller_id_number", caller_id_number),
        ("originate_timeout", str(timeout_seconds)),
        ("ignore_early_media", "true"),
    ]
    if line_variable is not None:
        variables.append(line_variable)
    variables += [("robocall_call_id", call_id), ("robocall_request_id", request_id)]
    variables += list(extra_variables)
    dial = check_word(dial_string, "dial string")
    block = channel_variables(variables)
    if api_on_answer is not None:
        block = block[:-1] + "," + api_on_answer_variable(api_on_answer) + "}"
    return f"originate {block}{dial} &park()"


def api_on_answer_variable(command: str) -> str:
    r"""``api_on_answer='<command>'`` for an originate's ``{...}`` block, commas escaped.

    FreeSWITCH 1.11.1 runs the variable's api command in the thread that marks the channel
    answered, right after it fires CHANNEL_ANSWER (``switch_channel_perform_mark_answered``;
    the text after the first space is expanded and passed as the argument). Getting a command
    with spaces, commas and braces into one variable takes two levels of FreeSWITCH's parsing:

    - the ``originate`` api splits its arguments on spaces (``switch_separate_string``), where
      single quotes keep spaces together and are then removed: the value is quoted;
    - the ``{...}`` block ends at its matching brace (nested braces are counted) and is split
      at commas; ``\,`` is a comma that does not split (the backslash is removed; other
      ways: ``{^^;...}`` changes the separator of the whole block). The command's own commas
      become ``\,``.

    So the command must hold no quote, backslash or ``${`` (expanded at answer), and its braces
    must balance (an extra ``}`` would end the block).
    """
    check_line(command, "api_on_answer command")
    for breaker in ("'", "\\"):
        if breaker in command:
            raise _refuse("api_on_answer command", command, f"holds {breaker!r}")
    depth = 0
    for char in command:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise _refuse("api_on_answer command", command, "has unbalanced braces")
    escaped = command.replace(",", "\\,")
    return f"api_on_answer='{escaped}'"


def channel_text(value: str) -> str:
    """Free client text (a requestId) made fit for a channel variable: characters that could
    leave the braces or split a word are percent-encoded; ordinary ids stay as they are."""
    return quote(value, safe="-_.:@+")


def channel_variables(variables: Iterable[tuple[str, str]] | Mapping[str, str]) -> str:
    """``{name=value,...}``, each name and value checked so none can leave the braces."""
    pairs = variables.items() if isinstance(variables, Mapping) else variables
    parts = [
        f"{_check_pattern(_NAME, name, 'variable name', 'a variable name')}="
        f"{check_word(value, f'variable {name}')}"
        for name, value in pairs
    ]
    return "{" + ",".join(parts) + "}"


def sendmsg_execute(
    uuid: str, app: str, arg: str, event_uuid: str, *, event_lock: bool = True
) -> str:
    """sendmsg ``execute``: run a dialplan app on a channel.

    ``Event-UUID`` comes back as ``Application-UUID`` on CHANNEL_EXECUTE(_COMPLETE), which is how
    robocall finds the end of this very execution; ``event-lock`` queues it behind the current app.
    The argument is one header line, so a newline in it would start a forged header.
    """
    lines = [
        f"sendmsg {check_uuid(uuid)}",
        "call-command: execute",
        f"execute-app-name: {_check_pattern(_NAME, app, 'app name', 'an app name')}",
        f"execute-app-arg: {check_line(arg, 'app argument')}",
    ]
    if event_lock:
        lines.append("event-lock: true")
    lines.append(f"Event-UUID: {check_uuid(event_uuid, 'Event-UUID')}")
    return "\n".join(lines) + "\n\n"


def sendmsg_hangup(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    """sendmsg ``hangup`` with a Q.850 cause name."""
    return (
        f"sendmsg {check_uuid(uuid)}\n"
        "call-command: hangup\n"
        f"hangup-cause: {_check_pattern(_CAUSE, cause, 'hangup cause', 'a cause name')}\n\n"
    )


def uuid_kill(uuid: str, cause: str | None = None) -> str:
    """``uuid_kill <uuid> [cause]`` command text (for :func:`api`)."""
    text = f"uuid_kill {check_uuid(uuid)}"
    if cause is not None:
        text += f" {_check_pattern(_CAUSE, cause, 'hangup cause', 'a cause name')}"
    return text


def uuid_exists(uuid: str) -> str:
    """``uuid_exists <uuid>`` command text (for :func:`api`; it answers ``true`` or ``false``)."""
    return f"uuid_exists {check_uuid(uuid)}"


def uuid_dump_json(uuid: str) -> str:
    """``uuid_dump <uuid> json`` command text (for :func:`api`): the channel's headers and
    variables as one JSON object, as its events carry them; ``-ERR No such channel!`` if none."""
    return f"uuid_dump {check_uuid(uuid)} json"


def show_channels_json() -> str:
    """``show channels as json`` command text (for :func:`api`)."""
    return "show channels as json"


def uuid_getvar(uuid: str, name: str) -> str:
    """``uuid_getvar <uuid> <name>`` command text (for :func:`api`)."""
    variable = _check_pattern(_NAME, name, "variable name", "a variable name")
    return f"uuid_getvar {check_uuid(uuid)} {variable}"


def uuid_record_read_leg(uuid: str, path: str, limit_seconds: int) -> str:
    """``uuid_record <uuid> start <path> <limit> {RECORD_READ_ONLY=true,...}`` command text.

    Records only what the far end says (the channel's read side) into ``path``, for at most
    ``limit_seconds``, written to the file frame by frame: FreeSWITCH buffers a recording's
    writes 64 KiB at a time by default (4 s of 8 kHz audio, measured on the lab switch: the file
    grew in 4096 ms steps), which a reader following the file would wait on;
    ``enable_file_write_buffering=false`` turns that off. The variables go in the command's own
    ``{...}`` block (FreeSWITCH 1.10+ reads per-recording variables there before the channel's),
    so a call recording started on the same channel later still hears both parties, buffered.
    robocall has the switch run it at the answer (:func:`api_on_answer_variable`); sent after
    the answer, it would start as late as the command arrives.
    """
    path_word = check_word(path, "recording path")
    if limit_seconds <= 0:
        raise UnsafeValue(f"recording limit {limit_seconds}: expected a positive number of seconds")
    variables = "{RECORD_READ_ONLY=true,enable_file_write_buffering=false}"
    return f"uuid_record {check_uuid(uuid)} start {path_word} {limit_seconds} {variables}"


def uuid_break_all(uuid: str) -> str:
    """``uuid_break <uuid> all`` command text: cut the media playing now, drop queued ones."""
    return f"uuid_break {check_uuid(uuid)} all"


def uuid_record_stop(uuid: str, path: str) -> str:
    """``uuid_record <uuid> stop <path>`` command text: the file is closed and its header set."""
    return f"uuid_record {check_uuid(uuid)} stop {check_word(path, 'recording path')}"


# --- app arguments -----------------------------------------------------------------------------


def quoted_argument(value: str, what: str) -> str:
    """One argument of an app that splits on spaces but honours single quotes."""
    check_line(value, what)
    if "'" in value:
        raise _refuse(what, value, "holds a single quote")
    return f"'{value}'"


NO_TERMINATORS: Final = "none"  # play_and_get_digits' word for "no key ends the input"


def _terminators(terminators: str) -> str:
    if terminators == NO_TERMINATORS:
        return terminators
    return _check_pattern(_DIGITS, terminators, "terminators", "keypad keys or 'none'")


def play_and_get_digits_arg(
    *,
    min_digits: int,
    max_digits: int,
    tries: int,
    timeout_ms: int,
    terminators: str,
    prompt: str,
    invalid_prompt: str,
    variable: str,
    digits_regex: str,
    digit_timeout_ms: int,
) -> str:
    """Argument of ``play_and_get_digits`` in the order the app reads it.

    ``digits_regex`` is built by robocall from validated branch digits; it must be one word.
    """
    for number, what in ((min_digits, "min digits"), (max_digits, "max digits"), (tries, "tries")):
        if not 0 <= number <= 128:
            raise UnsafeValue(f"{what} {number!r} is outside 0..128")
    for millis, what in ((timeout_ms, "timeout"), (digit_timeout_ms, "digit timeout")):
        if not 1 <= millis <= 600_000:
            raise UnsafeValue(f"{what} {millis!r} ms is outside 1..600000")
    check_line(digits_regex, "digits regex")
    if " " in digits_regex or "'" in digits_regex:
        raise _refuse("digits regex", digits_regex, "must be one word")
    return " ".join(
        [
            str(min_digits),
            str(max_digits),
            str(tries),
            str(timeout_ms),
            _terminators(terminators),
            quoted_argument(prompt, "prompt"),
            quoted_argument(invalid_prompt, "invalid prompt"),
            _check_pattern(_NAME, variable, "variable name", "a variable name"),
            digits_regex,
            str(digit_timeout_ms),
        ]
    )

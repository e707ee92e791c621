"""Scripted callees and the parsing of originate / bridge dial strings. Pure.

A ``Callee`` says what the far end of one dialled number does: answer after N ms (and maybe
press digits, maybe hang up), or refuse (busy, reject, network failure, unallocated), or ring
until the originate times out. A ``CalleeBook`` maps numbers to callees with a default for
every other number; ``CalleeBook.from_file`` reads the JSON format of docs/fakeswitch-callees.md.
Without a default, every other number is one of :func:`person`'s callees: the world of people
that ``robocall serve --switch fake`` dials unless told otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from robocall.errors import ConfigError
from robocall.testing.voice import Segment, parse_script

# outcome -> (Hangup-Cause, SIP status) of a callee that refuses the call.
REFUSALS: dict[str, tuple[str, int]] = {
    "busy": ("USER_BUSY", 486),
    "reject": ("CALL_REJECTED", 603),
    "network_failure": ("NORMAL_TEMPORARY_FAILURE", 503),
    "unallocated": ("UNALLOCATED_NUMBER", 404),
}
OUTCOMES = ("answer", "no_answer", *REFUSALS)
DTMF_KEYS = set("0123456789*#ABCD")


@dataclass(frozen=True)
class Press:
    """Digits the callee presses ``at_ms`` after it answered (several: ``gap_ms`` apart) — or,
    with ``on_prompt=n``, ``at_ms`` after the n-th play_and_get_digits prompt began, as a person
    who answers what they hear (timing that does not depend on how fast robocall got there)."""

    at_ms: int
    digits: str
    gap_ms: int = 100
    on_prompt: int | None = None


@dataclass(frozen=True)
class Callee:
    """What the far end of one number does."""

    outcome: str = "answer"
    answer_after_ms: int = 20
    ring: bool = True
    presses: tuple[Press, ...] = ()
    hangup_after_ms: int | None = None
    audio: tuple[Segment, ...] = ()  # what the callee says from the answer on (voice.py)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ConfigError(f"callee outcome {self.outcome!r}: expected one of {OUTCOMES}")
        for press in self.presses:
            if not press.digits or set(press.digits) - DTMF_KEYS:
                raise ConfigError(f"callee digits {press.digits!r}: use 0-9 * # A-D")

    @property
    def refusal(self) -> tuple[str, int] | None:
        """(cause, SIP status) when this callee refuses the call, else None."""
        return REFUSALS.get(self.outcome)

    def dtmf_schedule(self) -> list[tuple[int, str]]:
        """Every single digit pressed by the clock, with its time in ms after answer, in order."""
        return self._schedule(None)

    def prompt_schedule(self, prompt: int) -> list[tuple[int, str]]:
        """The digits pressed on hearing the ``prompt``-th prompt, in ms after it began."""
        return self._schedule(prompt)

    def _schedule(self, prompt: int | None) -> list[tuple[int, str]]:
        schedule = [(p.at_ms + i * p.gap_ms, d) for p in self.presses if p.on_prompt == prompt
                    for i, d in enumerate(p.digits)]
        return sorted(schedule, key=lambda item: item[0])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Callee:
        """A callee from its JSON object (see docs/fakeswitch-callees.md)."""
        known = {"outcome", "answer_after_ms", "ring", "digits", "hangup_after_ms", "audio"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"callee: unknown field(s) {sorted(unknown)}")
        presses = tuple(
            Press(int(p["at_ms"]), str(p["digits"]), int(p.get("gap_ms", 100)),
                  None if p.get("on_prompt") is None else int(p["on_prompt"]))
            for p in data.get("digits", ())
        )
        hangup = data.get("hangup_after_ms")
        return cls(
            outcome=data.get("outcome", "answer"),
            answer_after_ms=int(data.get("answer_after_ms", 20)),
            ring=bool(data.get("ring", True)),
            presses=presses,
            hangup_after_ms=None if hangup is None else int(hangup),
            audio=parse_script(list(data.get("audio", ()))),
        )


# --- the default world: people ----------------------------------------------------------------

# An extension of the PBX is dialled as ``user/<ext>@<domain>`` or is a short number (E.164
# numbers people are called on have 7 digits or more).
EXTENSION_MAX_DIGITS = 6
PERSON_ANSWER_MS = 2000  # rings two seconds, then picks up
PERSON_PRESS_MS = 2500  # into each menu prompt: time to hear the choices
PERSON_PATIENCE_MS = 45_000  # hangs up after this long on the line, whatever is still playing
PERSON_MENUS = 20  # answers this many menu prompts (retries and nested menus included)
EXTENSION_ANSWER_MS = 1000
EXTENSION_TALK_MS = 5000


def person(number: str, endpoint: str = "") -> Callee:
    """The callee behind ``number`` in FakeSwitch's default world, the same every time.

    An extension answers, talks a little and hangs up. A phone number's last digit says who
    answers it (docs/fakeswitch-callees.md): 0-4 press 1 at every menu, 5-7 press 0, 8 listens
    and presses nothing, 9 is busy. Everyone who answers hangs up after PERSON_PATIENCE_MS.
    """
    if endpoint.startswith("user/") or (
        number.isdigit() and len(number) <= EXTENSION_MAX_DIGITS
    ):
        return Callee(answer_after_ms=EXTENSION_ANSWER_MS, hangup_after_ms=EXTENSION_TALK_MS)
    last = number[-1:]
    digit = int(last) if last.isdigit() else 0
    if digit == 9:
        return Callee(outcome="busy", ring=False)
    key = "1" if digit <= 4 else "0" if digit <= 7 else None
    presses = () if key is None else tuple(
        Press(PERSON_PRESS_MS, key, on_prompt=prompt) for prompt in range(1, PERSON_MENUS + 1)
    )
    return Callee(answer_after_ms=PERSON_ANSWER_MS, presses=presses,
                  hangup_after_ms=PERSON_PATIENCE_MS)


@dataclass
class CalleeBook:
    """Callees by dialled number, and the one that answers every other number (``default``;
    None: every other number is a :func:`person`)."""

    callees: dict[str, Callee] = field(default_factory=dict)
    default: Callee | None = field(default_factory=Callee)

    def lookup(self, number: str, endpoint: str = "") -> Callee:
        """The callee for a dial string's endpoint (exact key) or else its number.

        ``+65...`` and ``65...`` are the same number. Keying by the whole endpoint
        (``sofia/internal/1000@127.0.0.1:5071``) tells apart callees that share a number.
        """
        for key in (endpoint, number, number.lstrip("+"), "+" + number.lstrip("+")):
            if key and key in self.callees:
                return self.callees[key]
        return self.default or person(number, endpoint)

    def set(self, number: str, callee: Callee) -> None:
        """Script one number (tests may re-script it between calls)."""
        self.callees[number] = callee

    @classmethod
    def people(cls, callees: dict[str, Callee] | None = None) -> CalleeBook:
        """``callees`` scripted, and every other number a :func:`person`."""
        return cls(dict(callees or {}), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalleeBook:
        """A book from the parsed JSON callee file (no ``default``: people for the rest)."""
        unknown = set(data) - {"default", "callees"}
        if unknown:
            raise ConfigError(f"callee file: unknown field(s) {sorted(unknown)}")
        default = Callee.from_dict(data["default"]) if "default" in data else None
        callees = {str(k): Callee.from_dict(v) for k, v in data.get("callees", {}).items()}
        return cls(callees, default)

    @classmethod
    def from_file(cls, path: str | Path) -> CalleeBook:
        """Read a JSON callee file; a malformed one is a ConfigError naming the file."""
        try:
            data = json.loads(Path(path).read_text())
            return cls.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"callee file {path}: {err}") from err


# --- dial strings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DialString:
    """One parsed dial string: its ``{...}``/``[...]`` variables, endpoint and dialled number."""

    variables: dict[str, str]
    endpoint: str
    number: str

    @property
    def channel_name(self) -> str:
        """The Channel-Name FreeSWITCH gives the leg (``+`` is URL-encoded, as recorded)."""
        if self.endpoint.startswith("user/"):
            user, _, domain = self.endpoint[5:].partition("@")
            return f"sofia/internal/{user}@{domain or '127.0.0.1'}"
        return self.endpoint.replace("+", "%2B")


def split_variables(text: str, delim: str = ",") -> dict[str, str]:
    """``a=1,b='x,y'`` -> dict; commas inside quotes or after a backslash do not split.

    ``^^<c>`` at the start makes ``<c>`` the separator instead (FreeSWITCH's
    ``switch_event_create_brackets``)."""
    if text.startswith("^^") and len(text) > 2:
        delim, text = text[2], text[3:]
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
            else:
                current.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == delim:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    variables: dict[str, str] = {}
    for part in parts:
        if "=" in part:
            key, _, value = part.partition("=")
            variables[key.strip()] = value
    return variables


def find_end_paren(text: str, open_char: str, close_char: str) -> int:
    """Index of the brace that closes ``text[0]``, nested braces counted; -1 if none
    (FreeSWITCH's ``switch_find_end_paren``)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == open_char:
            depth += 1
        elif ch == close_char:
            depth -= 1
            if depth == 0:
                return i
    return -1


def parse_dial_string(text: str) -> DialString:
    """Split leading ``{...}`` / ``[...]`` / ``<...>`` variable blocks off and find the number."""
    variables: dict[str, str] = {}
    rest = text.strip()
    while rest and rest[0] in "{[<":
        close = {"{": "}", "[": "]", "<": ">"}[rest[0]]
        end = find_end_paren(rest, rest[0], close)
        if end < 0:
            break
        variables.update(split_variables(rest[1:end]))
        rest = rest[end + 1:]
    return DialString(variables, rest, dialled_number(rest))


_UNESCAPED = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def separate_arguments(text: str) -> list[str]:
    """An api command's arguments as FreeSWITCH 1.11.1 splits them (``switch_separate_string``
    with a space): spaces inside single quotes do not split; the quotes are then removed, and
    a backslash before a quote, a backslash or n/r/t/s is resolved. Other escapes (``\\,``)
    stay for the next level to read."""
    parts: list[str] = []
    current: list[str] = []
    inside = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == "'":
            inside = not inside
        if ch == " " and not inside:
            if current:
                parts.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if current:
        parts.append("".join(current))
    return [_cleanup("".join(part)) for part in parts]


def _cleanup(text: str) -> str:
    out: list[str] = []
    inside = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and (text[i + 1] in "'\"\\" or
                                                  text[i + 1] in _UNESCAPED):
            out.append(_UNESCAPED.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if ch == "'" and (inside or "'" in text[i + 1:]):
            inside = not inside
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip(" ")


def dialled_number(endpoint: str) -> str:
    """The callee's number in a dial string.

    ``sofia/gateway/robocall/+6580000001`` -> ``+6580000001``; ``user/1000@domain`` -> ``1000``;
    ``sofia/internal/+6580000001@127.0.0.1:5090`` -> ``+6580000001``; ``loopback/1000`` -> ``1000``.
    """
    parts = endpoint.split("/")
    if parts[0] == "sofia" and len(parts) >= 4 and parts[1] == "gateway":
        target = "/".join(parts[3:])
    else:
        target = parts[-1] if len(parts) > 1 else endpoint
    target = unquote(target)
    if target.startswith("sip:"):
        target = target[4:]
    return target.split("@", 1)[0].split(";", 1)[0]


@dataclass(frozen=True)
class OriginateArgs:
    """``originate <dial string> <destination>`` parsed."""

    dial: DialString
    destination: str


def parse_originate(argument: str) -> OriginateArgs:
    """Parse the argument of ``originate``: split on spaces as FreeSWITCH does (quotes keep
    a value's spaces together), then the dial string's variable blocks."""
    args = separate_arguments(argument.strip())
    if not args:
        return OriginateArgs(parse_dial_string(""), "")
    return OriginateArgs(parse_dial_string(args[0]), " ".join(args[1:]))

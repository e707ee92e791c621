"""Message placeholders: ``{{ name }}`` filled from a destination's properties, in a sandbox.

Only bare names are allowed between the braces: attribute or item access, filters, tests,
calls, control blocks and arithmetic are refused when the request is submitted, so a message
can never run code or reach beyond the destination's own properties. jinja2's sandboxed parser
reads the text; nothing is ever executed: a message is filled in from its parsed parts, so
every name means the property of that name (even ``self``, which a jinja template would
answer with itself), and a name that is missing raises instead of printing nothing
("Dear ,").

Checking 100,000 destinations must cost milliseconds, not a jinja render each, so a compiled
template also keeps its literal text and names in order; :meth:`MessageTemplate.rendered_length`
and :meth:`MessageTemplate.missing` answer from those without rendering.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from robocall.errors import InputError

_ENVIRONMENT = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,  # the rendered text is exactly the submitted text, filled in
)
# jinja's globals (range, dict, cycler...) would answer a placeholder a destination lacks
_ENVIRONMENT.globals.clear()


@dataclass(frozen=True)
class MessageTemplate:
    """A message text whose placeholders are all bare names."""

    text: str
    parts: tuple[str | None, ...]  # literal text, or None where names[i] goes, in order
    names: tuple[str, ...]

    @functools.cached_property
    def required(self) -> frozenset[str]:
        """The property names this message needs."""
        return frozenset(self.names)

    @functools.cached_property
    def literal_length(self) -> int:
        """The length of the text outside the placeholders."""
        return sum(len(part) for part in self.parts if part is not None)

    def missing(self, properties: Mapping[str, str]) -> list[str]:
        """The names this message needs that ``properties`` lacks, in order of first use."""
        if self.required <= properties.keys():
            return []
        return list(dict.fromkeys(name for name in self.names if name not in properties))

    def rendered_length(self, properties: Mapping[str, str]) -> int:
        """The length of :meth:`render`'s result, without rendering (names must be present)."""
        return self.literal_length + sum(map(len, map(properties.__getitem__, self.names)))

    @functools.cached_property
    def blank_literal(self) -> bool:
        """Whether the text outside the placeholders is only whitespace (or nothing)."""
        return not "".join(part for part in self.parts if part is not None).strip()

    def render(self, properties: Mapping[str, str]) -> str:
        """The text with every placeholder filled with the property of its name.

        Filled from the parsed parts, not by running the template: every name a client may
        send is just a name here (``self``, ``loop``..., which mean something to jinja, too).
        """
        if not self.names:
            return self.text
        missing = self.missing(properties)
        if missing:
            raise InputError("", f"placeholder missing: {missing[0]!r}")
        names = iter(self.names)
        return "".join(
            part if part is not None else str(properties[next(names)]) for part in self.parts
        )


def compile_template(text: str) -> MessageTemplate:
    """Check that ``text``'s placeholders are bare names; raise InputError (no path) if not."""
    if "{" not in text:  # the common case costs nothing
        return MessageTemplate(text=text, parts=(text,), names=())
    try:
        tree = _ENVIRONMENT.parse(text)
    except TemplateSyntaxError as err:
        raise InputError("", f"malformed placeholder: {err.message}") from err
    parts: list[str | None] = []
    names: list[str] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            raise InputError("", "only {{ name }} placeholders are allowed (no blocks)")
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                parts.append(None)
                names.append(node.name)
            else:
                raise InputError(
                    "", "only {{ name }} placeholders are allowed (no attributes, filters or code)"
                )
    return MessageTemplate(text=text, parts=tuple(parts), names=tuple(names))


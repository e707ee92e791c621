"""Dial strings: how a destination or a transfer target becomes a FreeSWITCH endpoint.

How a number is reached is configuration, not code (``ROBOCALL_DIAL_TEMPLATE``, e.g.
``sofia/gateway/{gateway}/{number}`` in production, ``sofia/internal/{number}@127.0.0.1:5090``
in a lab); so is an extension (``ROBOCALL_EXTENSION_TEMPLATE``, default ``user/{ext}@{domain}``).
Only digits (and a leading ``+``) from the client ever reach a dial string: they are checked
again here, whatever validated them before.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from robocall.errors import ConfigError, UnsafeValue
from robocall.esl import commands
from robocall.flow.model import Transfer, TransferKind

E164 = re.compile(r"^\+?[1-9]\d{1,14}$")
EXTENSION = re.compile(r"^\d{2,10}$")
# Operator-supplied names (gateway, domain) end up inside the same dial string.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")

_SAMPLE_NUMBER = "+6580000000"
_SAMPLE_EXTENSION = "1000"

NUMBER_FIELDS = frozenset({"number", "gateway", "domain"})
EXTENSION_FIELDS = frozenset({"ext", "domain", "gateway"})


@dataclass(frozen=True)
class DialPlan:
    """Templates and names that turn numbers and extensions into dial strings."""

    number_template: str = "sofia/gateway/{gateway}/{number}"
    extension_template: str = "user/{ext}@{domain}"
    gateway: str = "robocall"
    domain: str = "127.0.0.1"

    def __post_init__(self) -> None:
        _check_template("ROBOCALL_DIAL_TEMPLATE", self.number_template, "number", NUMBER_FIELDS)
        _check_template(
            "ROBOCALL_EXTENSION_TEMPLATE", self.extension_template, "ext", EXTENSION_FIELDS
        )
        for label, value in (("gateway", self.gateway), ("domain", self.domain)):
            if not _SAFE_NAME.match(value):
                raise ConfigError(f"{label} {value!r}: use letters, digits, '.', '-', '_', ':'")
        # Held to the command builder's own rules now, at start, with a sample destination: a
        # template it would refuse (a space, '|', '[') must not be found out call by call.
        for variable, template, sample in (
            ("ROBOCALL_DIAL_TEMPLATE", self.number_template, self.number(_SAMPLE_NUMBER)),
            ("ROBOCALL_EXTENSION_TEMPLATE", self.extension_template,
             self.extension(_SAMPLE_EXTENSION)),
        ):
            try:
                commands.check_word(sample, "dial string")
            except UnsafeValue as err:
                raise ConfigError(f"{variable}={template!r}: {err}") from err

    def number(self, phone: str) -> str:
        """The dial string that calls an E.164 number."""
        if not E164.match(phone):
            raise UnsafeValue(f"{phone!r} is not an E.164 number")
        return self.number_template.format(number=phone, gateway=self.gateway, domain=self.domain)

    def extension(self, ext: str) -> str:
        """The dial string that rings a PBX extension."""
        if not EXTENSION.match(ext):
            raise UnsafeValue(f"{ext!r} is not an extension (2-10 digits)")
        return self.extension_template.format(ext=ext, gateway=self.gateway, domain=self.domain)

    def transfer(self, transfer: Transfer) -> str:
        """The dial string a transfer step bridges to."""
        if transfer.kind is TransferKind.EXTENSION:
            return self.extension(transfer.target)
        return self.number(transfer.target)


def _check_template(variable: str, template: str, required: str, allowed: frozenset[str]) -> None:
    if any(c in template for c in "\n\r,") or "${" in template:
        raise ConfigError(f"{variable}={template!r}: newlines, ',' and '${{' are not allowed")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ConfigError(f"{variable}={template!r}: {err}") from err
    unknown = fields - allowed
    if unknown:
        raise ConfigError(
            f"{variable}={template!r}: unknown placeholder(s) {sorted(unknown)}; "
            f"use {sorted(allowed)}"
        )
    if required not in fields:
        raise ConfigError(f"{variable}={template!r}: must contain {{{required}}}")

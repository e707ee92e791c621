"""A resolver for webhook hosts that never leaves the machine: the tests' stand-in for DNS.

robocall takes its resolver from the composition root (``bootstrap.build_api(resolver=...)``),
so a test can make a name resolve to any address — a public one, then a private one — without a
network or /etc/hosts. Names it does not know fail as an unknown name does.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LocalResolver:
    """``names`` maps a host name to its addresses (``localhost`` is always known, as on any
    host); each answer can be changed mid-test."""

    names: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names.setdefault("localhost", ["127.0.0.1", "::1"])

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        found = self.names.get(host.lower().rstrip("."))
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(found)

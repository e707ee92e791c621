"""A wire-level fake FreeSWITCH for tests, benchmarks and ``robocall serve --switch fake``.

``FakeSwitch`` speaks the inbound Event Socket on 127.0.0.1 as FreeSWITCH 1.11.1 does (held to
the transcripts in tests/transcripts/), with scripted callees per dialled number.
"""

from __future__ import annotations

from robocall.testing.callees import Callee, CalleeBook, Press
from robocall.testing.server import FakeSwitch

__all__ = ["Callee", "CalleeBook", "FakeSwitch", "Press"]

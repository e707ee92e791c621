"""Compiled call flows by request: compiled once, shared by every call of the request."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable

from robocall.flow.compile import Program, compile_flow
from robocall.flow.model import MachineDetection
from robocall.flow.parse import parse_call_flow, parse_machine_detection

DEFAULT_CACHED_PROGRAMS = 256


class ProgramCache:
    """The compiled program of a request's stored callFlow, least recently used evicted."""

    def __init__(
        self, languages: Iterable[str], *, max_programs: int = DEFAULT_CACHED_PROGRAMS
    ) -> None:
        self.languages = frozenset(languages)
        self.max_programs = max_programs
        self._programs: OrderedDict[int, Program] = OrderedDict()

    def program(self, request_seq: int, call_flow_json: str) -> Program:
        """The program of request ``request_seq`` (its callFlow was validated at submission)."""
        program = self._programs.get(request_seq)
        if program is None:
            flow = parse_call_flow(json.loads(call_flow_json), languages=self.languages)
            program = self._programs[request_seq] = compile_flow(flow)
            if len(self._programs) > self.max_programs:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(request_seq)
        return program

    def machine_detection(self, stored_json: str | None) -> MachineDetection | None:
        """A request's stored ``machineDetection`` (validated at submission), or None."""
        if not stored_json:
            return None
        return parse_machine_detection(json.loads(stored_json), self.languages)

"""A client that knows only the B3 contract text: ``POST /call`` and ``GET /status/{requestId}``
with the ``x-credential-api-key`` header, and the keys and values the text shows. It reads
robocall as a client written for B3 would, and holds every answer to the served OpenAPI
document besides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from tests.support.openapi_check import check_response

# What the contract's "Example of successful result" shows, key for key.
REQUEST_KEYS = {"requestId", "status", "details"}
DETAIL_KEYS = {"requestId", "caller", "destination", "status", "callFlowSteps", "monitorData"}
STEP_KEYS = {"stepName", "info"}
INFO_KEYS = {"call_state", "call_status", "status", "userPressedDigits", "transfer_status"}
MONITOR_KEYS = {"uuid", "type", "dest"}
# Values the contract text names.
STEP_NAMES = {"play", "gather", "transfer"}
CALL_STATES = {"ongoing", "ended"}
CALL_STATUSES = {"answered", "busy", "no_answer", "failed"}
SUCCESS = "sucess_ok"  # sic, as the contract spells it


@dataclass
class B3Client:
    base_url: str
    key: str

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._checked(requests.post(
            f"{self.base_url}/v1/call", json=body, headers=self._headers(), timeout=120
        ))
        assert answer.status_code == 200, answer.text
        return self._read(answer.json())

    def status(self, request_id: str) -> dict[str, Any]:
        answer = self._checked(requests.get(
            f"{self.base_url}/v1/status/{request_id}", headers=self._headers(), timeout=120
        ))
        assert answer.status_code == 200, answer.text
        return self._read(answer.json())

    def _headers(self) -> dict[str, str]:
        return {"x-credential-api-key": self.key}

    def _checked(self, answer: requests.Response) -> requests.Response:
        return check_response(self.base_url, answer)

    @staticmethod
    def _read(status: dict[str, Any]) -> dict[str, Any]:
        """The status, after checking each key the contract shows is there, as it shows it."""
        assert status.keys() >= REQUEST_KEYS
        for detail in status["details"]:
            assert detail.keys() >= DETAIL_KEYS
            for step in detail["callFlowSteps"]:
                assert step.keys() == STEP_KEYS and step["stepName"] in STEP_NAMES
                info = step["info"]
                assert info.keys() == INFO_KEYS, info
                assert all(isinstance(value, str) for value in info.values())
                assert info["call_state"] in CALL_STATES and info["call_status"] in CALL_STATUSES
            for leg in detail["monitorData"]:
                assert leg.keys() == MONITOR_KEYS
        return status
